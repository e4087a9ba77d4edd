-- Version 4 of the fleet's tables: every label of a clip with several (AudioSet, AVA-Kinetics) and AVA's
-- person boxes, as the journal keeps them (its version 9): `labels` a JSON array of every label, the first
-- also in `label` (NULL for a clip with one label); `boxes` a JSON array of boxes (NULL when none). A fleet
-- seeded by an older kinetics-dl has NULL in both: the next seed fills them in. Run once, inside the
-- migration's lock.
ALTER TABLE clip ADD COLUMN IF NOT EXISTS labels jsonb,
                 ADD COLUMN IF NOT EXISTS boxes jsonb;

UPDATE schema_version SET version = 4;
