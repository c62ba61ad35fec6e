-- The baseline pass recomputes only the days whose hourly rollups changed (README, "Personal
-- baseline"): per customer and UTC day of its window, what the day's hours were when the pass
-- last computed it (how many hours, their readings and bpm sums, and the rule's settings), and
-- whether the day then had a resting rate. A day whose hours no longer match, or which had a
-- resting rate that is missing now, is recomputed; every other day is left as it is. Written
-- only by the pass (the job's role); days leaving the window are pruned by it.
CREATE TABLE baseline_day_sources (
    customer_id  text    NOT NULL,
    day          date    NOT NULL,  -- UTC day
    hours        integer NOT NULL,  -- hourly rollup rows of the day, whatever their readings
    readings     bigint  NOT NULL,  -- sum of their readings
    sum_bpm      bigint  NOT NULL,  -- sum of their bpm sums
    rule         text    NOT NULL,  -- the settings the day was judged with
    qualified    boolean NOT NULL,  -- the day got a resting rate in customer_resting_days
    PRIMARY KEY (customer_id, day)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON baseline_day_sources TO heartbeat_writer;
