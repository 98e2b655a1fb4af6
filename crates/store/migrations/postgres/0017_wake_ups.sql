-- Wake-ups: PostgreSQL tells the servers listening on channel `rota_wake` (`LISTEN
-- rota_wake`, see `Store::wake_ups`) what changed, so they need not poll for it. The
-- triggers fire for every writer (a server, `rota run`, `rota cancel`), whichever statement
-- it runs; a notification is sent when its transaction commits, once per payload however
-- many rows changed. The payload names what changed:
-- `work`    a dispatch became pending (handed over, or an unconfirmed claim went back);
-- `ended`   a dispatch ended (done, abandoned or withdrawn): its engine waits for it;
-- `queued`  a run became queued: a server should adopt and start it;
-- `cancel`  a run's cancel was requested (or forced);
-- `changed` jobs or pause states changed (a change counter moved).
CREATE FUNCTION rota_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('rota_wake', TG_ARGV[0]);
    RETURN NULL;
END
$$;

CREATE TRIGGER dispatches_handed_over AFTER INSERT ON dispatches
    FOR EACH ROW WHEN (NEW.state = 'pending') EXECUTE FUNCTION rota_wake('work');
CREATE TRIGGER dispatches_pending_again AFTER UPDATE OF state ON dispatches
    FOR EACH ROW WHEN (NEW.state = 'pending' AND OLD.state <> 'pending')
    EXECUTE FUNCTION rota_wake('work');
CREATE TRIGGER dispatches_ended AFTER UPDATE OF state ON dispatches
    FOR EACH ROW WHEN (NEW.state IN ('done', 'abandoned', 'withdrawn')
                       AND OLD.state <> NEW.state)
    EXECUTE FUNCTION rota_wake('ended');
CREATE TRIGGER runs_queued AFTER INSERT ON runs
    FOR EACH ROW WHEN (NEW.status = 'queued') EXECUTE FUNCTION rota_wake('queued');
CREATE TRIGGER runs_queued_again AFTER UPDATE OF status ON runs
    FOR EACH ROW WHEN (NEW.status = 'queued' AND OLD.status <> 'queued')
    EXECUTE FUNCTION rota_wake('queued');
CREATE TRIGGER runs_cancel_requested AFTER UPDATE OF cancel_requested_at, cancel_forced_at ON runs
    FOR EACH ROW WHEN (NEW.cancel_requested_at IS DISTINCT FROM OLD.cancel_requested_at
                       OR NEW.cancel_forced_at IS DISTINCT FROM OLD.cancel_forced_at)
    EXECUTE FUNCTION rota_wake('cancel');
CREATE TRIGGER change_counters_moved AFTER UPDATE ON change_counters
    FOR EACH ROW EXECUTE FUNCTION rota_wake('changed');
