-- mqsync schema v1: users and tokens, groups with their seq counter, memberships carrying the
-- per-member cursors, messages stored once, presence, and the notifications brokers and mqsyncd
-- listen to. See docs/schema.md for the reasoning behind each table.

CREATE TABLE users (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    is_admin    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Only SHA-256 hashes of tokens are stored. A token is 256 random bits, so a fast hash is enough.
CREATE TABLE user_tokens (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id     text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_tokens_user_idx ON user_tokens (user_id);

-- last_seq is the per-group counter. A writer takes the row lock with
-- UPDATE groups SET last_seq = last_seq + n ... RETURNING last_seq and holds it until commit, so
-- seqs are handed out gapless and in commit order whatever the number of writers (SPEC 7.2).
CREATE TABLE groups (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name        text NOT NULL DEFAULT '',
    last_seq    bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per (group, member). The member sees messages with seq > joined_seq. delivered_seq and
-- read_seq are cumulative cursors: a receipt is one UPDATE of one row (O(1) per receipt), and
-- storing a message writes no per-recipient row (O(1) per message).
CREATE TABLE memberships (
    group_id      text NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    user_id       text NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role          text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
    joined_seq    bigint NOT NULL DEFAULT 0 CHECK (joined_seq >= 0),
    delivered_seq bigint NOT NULL DEFAULT 0,
    read_seq      bigint NOT NULL DEFAULT 0,
    joined_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id),
    CHECK (read_seq <= delivered_seq),
    CHECK (delivered_seq >= joined_seq)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Messages are stored once. origin is the spool key of the broker that accepted the message
-- (16 bytes: per-process random epoch + counter): replaying a spool after a crash inserts only
-- what is missing. (sender, cid) deduplicates client resends.
CREATE TABLE messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    group_id    text NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    seq         bigint NOT NULL CHECK (seq > 0),
    sender      text NOT NULL,
    payload     bytea NOT NULL,
    qos         smallint NOT NULL DEFAULT 1 CHECK (qos BETWEEN 0 AND 2),
    cid         text CHECK (octet_length(cid) BETWEEN 1 AND 64),
    origin      bytea CHECK (length(origin) = 16),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (group_id, seq)
);
CREATE UNIQUE INDEX messages_sender_cid_idx ON messages (sender, cid) WHERE cid IS NOT NULL;
CREATE UNIQUE INDEX messages_origin_idx ON messages (origin) WHERE origin IS NOT NULL;

-- One row per (user, broker node). A user is online while some row has connections > 0 and a
-- last_seen younger than 90 s (brokers refresh it every 30 s while connected).
CREATE TABLE presence (
    user_id     text NOT NULL,
    node        text NOT NULL,
    connections integer NOT NULL DEFAULT 0 CHECK (connections >= 0),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, node)
);

-- Change notifications. Channel mqsync_state carries 'user:<uid>', 'group:<gid>' and
-- 'member:<gid>:<uid>' for every change to the tables brokers cache, whoever makes it (mqsyncd,
-- psql, another broker). Channel mqsync_msg carries '<gid>:<last_seq>' once per group per
-- committing transaction that appends messages.
CREATE FUNCTION mqsync_notify_state() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    IF TG_TABLE_NAME = 'users' THEN
        PERFORM pg_notify('mqsync_state', 'user:' || r.id);
    ELSIF TG_TABLE_NAME = 'user_tokens' THEN
        PERFORM pg_notify('mqsync_state', 'user:' || r.user_id);
    ELSIF TG_TABLE_NAME = 'groups' THEN
        PERFORM pg_notify('mqsync_state', 'group:' || r.id);
    ELSIF TG_TABLE_NAME = 'memberships' THEN
        PERFORM pg_notify('mqsync_state', 'member:' || r.group_id || ':' || r.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER users_notify AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION mqsync_notify_state();
CREATE TRIGGER user_tokens_notify AFTER INSERT OR DELETE ON user_tokens
    FOR EACH ROW EXECUTE FUNCTION mqsync_notify_state();
CREATE TRIGGER groups_notify AFTER INSERT OR DELETE OR UPDATE OF name ON groups
    FOR EACH ROW EXECUTE FUNCTION mqsync_notify_state();
-- Cursor moves are not cached by brokers: only role and membership changes notify.
CREATE TRIGGER memberships_notify AFTER INSERT OR DELETE OR UPDATE OF role ON memberships
    FOR EACH ROW EXECUTE FUNCTION mqsync_notify_state();

CREATE FUNCTION mqsync_notify_msg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('mqsync_msg', NEW.id || ':' || NEW.last_seq);
    RETURN NULL;
END $$;

CREATE TRIGGER groups_notify_msg AFTER UPDATE OF last_seq ON groups
    FOR EACH ROW WHEN (NEW.last_seq > OLD.last_seq) EXECUTE FUNCTION mqsync_notify_msg();
