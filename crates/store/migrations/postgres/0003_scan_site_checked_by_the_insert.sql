-- A new scan's site is checked by the statement that inserts it (CREATE_SCANS in
-- src/postgres.rs), no longer by the foreign key scans.site_id → sites.
--
-- PostgreSQL checks a foreign key with a row trigger per inserted row: an SPI query that
-- looks the site up and locks it FOR KEY SHARE, which writes the lock into the site's tuple
-- (a dirtied page and a WAL record per new scan). A profile of the API benchmark's W2 (new
-- scans) put the end-of-statement trigger work at a quarter of PostgreSQL's CPU, and the
-- group commit's one statement at a time is what bounds new scans per second.
--
-- The insert now looks the batch's sites up in one index scan and, when any is missing,
-- fails the whole statement through sentinel_missing_site with the SQLSTATE of a foreign
-- key violation (23503): the batch stays all-or-nothing and the caller sees the same error
-- as before. The lock the trigger took only guarded against the site being deleted while the
-- scan committed; nothing deletes sites (the cascade to scans went with the key). Imports
-- check their scans' sites with a query of their own.
ALTER TABLE scans DROP CONSTRAINT scans_site_id_fkey;

CREATE FUNCTION sentinel_missing_site(missing bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% of the new scans name a site that does not exist', missing
        USING ERRCODE = 'foreign_key_violation';
END
$$;
