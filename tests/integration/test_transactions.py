"""Transactions: MULTI EXEC DISCARD WATCH UNWATCH, over raw connections and
through redis-py pipelines (transaction=True, WatchError, Redis.transaction).

Transactions that touch several keys use keys with a common {hashtag}: in a
kvpool pool (KVPOOL_POOL_NODES) the keys of one MULTI/EXEC, watched keys
included, must live on one node; with redis and a single node the hashtag is
just part of the name.
"""

import pytest
import redis

from util import NOT_INT, err, wrong_args

EXECABORT = "EXECABORT Transaction discarded because of previous errors."


@pytest.fixture
def other(server, r):
    """A second raw connection, to change watched keys from outside."""
    c = server.raw()
    yield c
    c.close()


# -------------------------------------------------------------- MULTI/EXEC

def test_multi_exec(raw):
    assert raw.execute("MULTI") == "OK"
    assert raw.execute("SET", "{t}a", "1") == "QUEUED"
    assert raw.last_raw == b"+QUEUED\r\n"
    assert raw.execute("INCR", "{t}a") == "QUEUED"
    assert raw.execute("GET", "{t}a") == "QUEUED"
    assert raw.execute("MGET", "{t}a", "{t}nokey") == "QUEUED"
    assert raw.execute("EXEC") == ["OK", 2, b"2", [b"2", None]]


def test_queued_commands_run_only_at_exec(raw, other):
    raw.execute("MULTI")
    raw.execute("SET", "k", "v")
    assert other.execute("GET", "k") is None
    assert raw.execute("EXEC") == ["OK"]
    assert other.execute("GET", "k") == b"v"


def test_empty_transaction(raw):
    assert raw.execute("MULTI") == "OK"
    assert raw.execute("EXEC") == []
    assert raw.last_raw == b"*0\r\n"


def test_runtime_error_does_not_abort_the_rest(raw):
    raw.execute("SET", "{t}s", "notanumber")
    raw.execute("MULTI")
    raw.execute("SET", "{t}a", "1")
    raw.execute("INCR", "{t}s")
    raw.execute("INCR", "{t}a")
    replies = raw.execute("EXEC")
    assert replies[0] == "OK"
    assert replies[1] == NOT_INT
    assert replies[2] == 2
    assert raw.execute("GET", "{t}a") == b"2"


def test_execabort_on_queued_syntax_errors(raw):
    raw.execute("MULTI")
    assert raw.execute("SET", "{t}a", "1") == "QUEUED"
    assert err(raw, "SET", "{t}a") == wrong_args("set")
    assert raw.execute("SET", "{t}b", "2") == "QUEUED"
    assert err(raw, "EXEC") == EXECABORT
    assert raw.execute("EXISTS", "{t}a", "{t}b") == 0, "nothing ran"
    assert err(raw, "EXEC") == "ERR EXEC without MULTI"


def test_execabort_on_unknown_command(raw):
    raw.execute("MULTI")
    raw.execute("SET", "a", "1")
    assert err(raw, "NOSUCHCMD", "x").startswith("ERR unknown command 'NOSUCHCMD'")
    assert err(raw, "EXEC") == EXECABORT
    assert raw.execute("EXISTS", "a") == 0


def test_nested_multi(raw):
    raw.execute("MULTI")
    assert err(raw, "MULTI") == "ERR MULTI calls can not be nested"
    # The transaction is still open and usable.
    assert raw.execute("SET", "a", "1") == "QUEUED"
    assert raw.execute("EXEC") == ["OK"]


def test_exec_discard_without_multi(raw):
    assert err(raw, "EXEC") == "ERR EXEC without MULTI"
    assert err(raw, "DISCARD") == "ERR DISCARD without MULTI"


def test_discard(raw):
    raw.execute("MULTI")
    raw.execute("SET", "a", "1")
    assert raw.execute("DISCARD") == "OK"
    assert raw.execute("GET", "a") is None
    assert err(raw, "EXEC") == "ERR EXEC without MULTI"


def test_select_inside_multi(raw):
    raw.execute("MULTI")
    raw.execute("SELECT", "5")
    raw.execute("SET", "k", "five")
    assert raw.execute("EXEC") == ["OK", "OK"]
    assert raw.execute("GET", "k") == b"five", "SELECT in EXEC stays in effect"
    raw.execute("SELECT", "0")
    assert raw.execute("GET", "k") is None


def test_select_error_inside_exec(raw):
    raw.execute("MULTI")
    assert raw.execute("SELECT", "99") == "QUEUED"
    assert raw.execute("EXEC") == ["ERR DB index is out of range"]


def test_large_transaction(raw):
    n = 1000
    cmds = [("MULTI",)] + [("INCR", "ctr") for _ in range(n)] + [("EXEC",)]
    replies = raw.pipeline(cmds)
    assert replies[0] == "OK"
    assert all(q == "QUEUED" for q in replies[1:-1])
    assert replies[-1] == list(range(1, n + 1))


def test_multi_arity(raw):
    assert err(raw, "MULTI", "x") == wrong_args("multi")
    # NOTE: redis 7.0 answers "EXEC x" with "EXECABORT Transaction discarded
    # because of: wrong number of arguments..." even outside MULTI; only the
    # "wrong number of arguments" part is checked.
    assert "wrong number of arguments" in err(raw, "EXEC", "x")


# ------------------------------------------------------------------- WATCH

def test_watch_abort_when_key_changed(raw, other):
    raw.execute("SET", "w", "0")
    assert raw.execute("WATCH", "w") == "OK"
    other.execute("SET", "w", "1")
    raw.execute("MULTI")
    raw.execute("SET", "w", "mine")
    assert raw.execute("EXEC") is None
    assert raw.last_raw == b"*-1\r\n"
    assert raw.execute("GET", "w") == b"1"


def test_watch_abort_resp3_null(r3, other):
    r3.execute("WATCH", "w")
    other.execute("SET", "w", "1")
    r3.execute("MULTI")
    r3.execute("PING")
    assert r3.execute("EXEC") is None
    assert r3.last_raw == b"_\r\n"


# The watched keys and the transaction's key share a {hashtag}: in a pool a
# transaction (WATCH included) must stay on one node.
@pytest.mark.parametrize("change", [
    ("SET", "{w}w", "same"),         # even writing the same value counts
    ("DEL", "{w}w"),
    ("EXPIRE", "{w}w", "100"),
    ("INCR", "{w}w2"),               # a second watched key
    ("APPEND", "{w}w", "x"),
    ("RENAME", "{w}w", "elsewhere"),
    ("FLUSHALL",),
    ("FLUSHDB",),
])
def test_watch_abort_on_any_write(raw, other, change):
    raw.execute("SET", "{w}w", "same")
    raw.execute("WATCH", "{w}w", "{w}w2")
    assert other.execute(*change) is not None
    raw.execute("MULTI")
    raw.execute("SET", "{w}result", "x")
    assert raw.execute("EXEC") is None, f"{change} must abort the transaction"
    assert raw.execute("EXISTS", "{w}result") == 0


def test_watch_missing_key_then_created(raw, other):
    raw.execute("WATCH", "new")
    other.execute("SET", "new", "1")
    raw.execute("MULTI")
    raw.execute("PING")
    assert raw.execute("EXEC") is None


def test_watch_own_write_before_multi_aborts(raw):
    raw.execute("WATCH", "w")
    raw.execute("SET", "w", "mine")
    raw.execute("MULTI")
    raw.execute("PING")
    assert raw.execute("EXEC") is None


def test_watch_unrelated_change_or_read_does_not_abort(raw, other):
    raw.execute("SET", "w", "1")
    raw.execute("WATCH", "w")
    other.execute("SET", "unrelated", "1")
    other.execute("GET", "w")
    other.execute("EXISTS", "w")
    raw.execute("MULTI")
    raw.execute("INCR", "w")
    assert raw.execute("EXEC") == [2]


def test_watch_other_db_does_not_abort(raw, other):
    raw.execute("SET", "w", "1")
    raw.execute("WATCH", "w")
    other.execute("SELECT", "1")
    other.execute("SET", "w", "db1")
    raw.execute("MULTI")
    raw.execute("GET", "w")
    assert raw.execute("EXEC") == [b"1"]


def test_unwatch(raw, other):
    raw.execute("WATCH", "w")
    assert raw.execute("UNWATCH") == "OK"
    other.execute("SET", "w", "1")
    raw.execute("MULTI")
    raw.execute("GET", "w")
    assert raw.execute("EXEC") == [b"1"]


def test_exec_and_discard_clear_watches(raw, other):
    raw.execute("WATCH", "w")
    raw.execute("MULTI")
    raw.execute("PING")
    assert raw.execute("EXEC") == ["PONG"]
    other.execute("SET", "w", "1")
    raw.execute("MULTI")
    raw.execute("PING")
    assert raw.execute("EXEC") == ["PONG"], "EXEC unwatched everything"
    raw.execute("WATCH", "w")
    raw.execute("MULTI")
    raw.execute("DISCARD")
    other.execute("SET", "w", "2")
    raw.execute("MULTI")
    raw.execute("PING")
    assert raw.execute("EXEC") == ["PONG"], "DISCARD unwatched everything"


def test_aborted_exec_clears_watches(raw, other):
    raw.execute("WATCH", "w")
    other.execute("SET", "w", "1")
    raw.execute("MULTI")
    assert raw.execute("EXEC") is None
    other.execute("SET", "w", "2")
    raw.execute("MULTI")
    raw.execute("PING")
    assert raw.execute("EXEC") == ["PONG"]


def test_watch_inside_multi(raw):
    raw.execute("MULTI")
    assert err(raw, "WATCH", "x") == "ERR WATCH inside MULTI is not allowed"
    raw.execute("DISCARD")
    assert err(raw, "WATCH") == wrong_args("watch")


# ----------------------------------------------------------------- redis-py

def test_redis_py_transaction_pipeline(r):
    p = r.pipeline(transaction=True)
    p.set("{t}a", "1").incr("{t}a").get("{t}a").mget("{t}a", "{t}missing").delete("{t}a").exists("{t}a")
    assert p.execute() == [True, 2, b"2", [b"2", None], 1, 0]


def test_redis_py_pipeline_runtime_error(r):
    r.set("{t}s", "x")
    p = r.pipeline(transaction=True)
    p.set("{t}a", "1").incr("{t}s").get("{t}a")
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        p.execute()
    assert r.get("{t}a") == b"1", "the other commands of the transaction ran"
    p = r.pipeline(transaction=True)
    p.set("{t}b", "1").incr("{t}s").get("{t}b")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError) and res[2] == b"1"


def test_redis_py_pipeline_syntax_error_aborts(r):
    p = r.pipeline(transaction=True)
    p.set("{t}a", "1")
    p.execute_command("SET", "{t}b")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'set' command"):
        p.execute()
    assert r.exists("{t}a") == 0, "EXECABORT: nothing ran"


def test_redis_py_watch_error(server, r):
    other = server.client()
    r.set("balance", "100")
    with r.pipeline() as p:
        p.watch("balance")
        current = int(p.get("balance"))
        other.set("balance", "50")
        p.multi()
        p.set("balance", current - 10)
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get("balance") == b"50"
    other.close()


def test_redis_py_transaction_helper_retries(server, r):
    other = server.client()
    r.set("counter", "0")
    calls = []

    def work(pipe):
        value = int(pipe.get("counter"))
        if not calls:
            other.incr("counter")  # a concurrent writer on the first attempt
        calls.append(value)
        pipe.multi()
        pipe.set("counter", value + 10)

    r.transaction(work, "counter")
    assert calls == [0, 1], "the first attempt was aborted by WATCH, the second succeeded"
    assert r.get("counter") == b"11"
    other.close()
