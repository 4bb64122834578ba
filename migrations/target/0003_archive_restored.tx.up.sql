-- Restoring a request marks its archive rows instead of deleting them: the archive then still
-- shows what was restored, by which restore request and when, until the purge removes it at
-- the end of the window. A row with restored_by set is never restored again.
ALTER TABLE tombstone.archive
    ADD COLUMN restored_by bigint,
    ADD COLUMN restored_at timestamptz;
