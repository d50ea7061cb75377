-- scans_created_by only served the ON DELETE SET NULL of scans.created_by → users, and users
-- are never deleted (no query filters on created_by): every new scan paid an index insert for
-- it. SQLite checks the foreign key itself with a primary-key lookup in users, which needs no
-- index on scans; it stays (rebuilding scans to drop it would cost more than it saves).
DROP INDEX scans_created_by;
