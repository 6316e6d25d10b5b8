"""The batch-predict and drift jobs: the same shape, one failure policy (:mod:`.failures`)."""
