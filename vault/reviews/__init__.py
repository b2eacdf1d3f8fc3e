"""Access review (点検・確認, SPEC §6): every confidential read is reconciled by someone else."""
