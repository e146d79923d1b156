"""Job and task lifecycle: a pure state machine (:mod:`.machine`) driven by one loop (:mod:`.loop`)."""
