-- The silence check's R (README, "Silent devices") never goes back. R is the earliest, over the
-- partitions, of how far each has been read; a partition idle for a while that receives a
-- message puts R back at its previous message until the job has read it. Judged at that older
-- moment, customers silent since then looked heard again, and an open ingestion outage was
-- resolved while it lasted (its next round reopened it within the cooldown, with no event: the
-- people on call were told it was over). A judgement made at R stays true later, so each round
-- judges at the latest R any round of the sink has reached, kept here in the row the check
-- already locks.
ALTER TABLE sink_progress ADD COLUMN silence_judged_up_to timestamptz;
