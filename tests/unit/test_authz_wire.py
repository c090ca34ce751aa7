"""The CheckResponse written straight in wire format is what the protobuf objects would be."""

from __future__ import annotations

from envoy.service.auth.v3 import external_auth_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.authz.mapping import check_response
from extproc.authz.wire import _written, check_response_bytes
from extproc.decide.answer import DECISION_ID_HEADER, Answer
from extproc.decision import EFFECTS, Decision, DryRunHit, Obligations
from extproc.errors import Code

text = st.text(max_size=40)  # any Unicode, empty included
names = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20)

decisions = st.builds(
    Decision,
    decision_id=names,
    request_id=text,
    effect=st.sampled_from(EFFECTS),
    rule=text,
    reason=text,
    status=st.integers(100, 599),
    error=st.none() | st.sampled_from(list(Code)),
    enforced=st.booleans(),
    dry_run=st.lists(
        st.builds(DryRunHit, rule=text, effect=st.sampled_from(EFFECTS), reason=text), max_size=3
    ).map(tuple),
    subject=text,
    issuer=text,
    groups=st.lists(text, max_size=4).map(tuple),
    source_address=text,
    source_country=text,
    source_region=text,
    declared_region=text,
    target_region=text,
    model=text,
    data_class=text,
    policy_revision=text,
    obligations=st.builds(Obligations, masking_profile=text, upstream_credential=text),
)
answers = st.builds(
    Answer,
    decision=decisions,
    set_headers=st.lists(st.tuples(names, text), max_size=3).map(tuple),
    remove_headers=st.lists(names, max_size=3).map(tuple),
    www_authenticate=st.none() | text,
)


@settings(max_examples=300)
@given(answers)
def test_the_bytes_parse_to_the_response_the_protobuf_objects_build(answer: Answer) -> None:
    written = external_auth_pb2.CheckResponse.FromString(check_response_bytes(answer))
    assert written == check_response(answer)


@given(decisions, st.lists(names, min_size=2, max_size=2, unique=True))
def test_a_cached_decision_still_carries_each_requests_own_ids(
    decision: Decision, ids: list[str]
) -> None:
    for request_id in ids:
        answer = Answer(decision._replace(decision_id=f"d-{request_id}", request_id=request_id))
        metadata = external_auth_pb2.CheckResponse.FromString(
            check_response_bytes(answer)
        ).dynamic_metadata
        assert (metadata["decision_id"], metadata["request_id"]) == (f"d-{request_id}", request_id)


@settings(max_examples=200)
@given(
    decisions.filter(lambda d: d.effect == "allow"),
    st.lists(st.tuples(names, text), max_size=2).map(tuple),
    st.lists(names, max_size=2).map(tuple),
    st.lists(st.tuples(names, text), min_size=1, max_size=6),
)
def test_an_allow_written_from_its_template_is_the_allow_written_in_full(
    decision: Decision,
    more_headers: tuple[tuple[str, str], ...],
    remove: tuple[str, ...],
    ids: list[tuple[str, str]],
) -> None:
    """Allows as the pipeline makes them (the decision id header first) come from a template
    per caller, route and id lengths; ids of the same and of other lengths (multi-byte
    included) follow one another, and every answer is byte for byte the one written in full."""
    for decision_id, request_id in [*ids, *ids]:
        allowed = decision._replace(decision_id=decision_id, request_id=request_id)
        answer = Answer(allowed, ((DECISION_ID_HEADER, decision_id), *more_headers), remove)
        written = check_response_bytes(answer)
        assert written == _written(answer)
        assert external_auth_pb2.CheckResponse.FromString(written) == check_response(answer)
