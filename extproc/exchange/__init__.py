"""The processor's exchange state machine: headers → bodies → masking → audit. Pure: no gRPC."""
