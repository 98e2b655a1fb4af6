-- Twin of postgres/0017_wake_ups.sql, which adds triggers that notify listening servers
-- (LISTEN/NOTIFY). SQLite has no notifications: its processes poll, and nothing changes here.
SELECT 1;
