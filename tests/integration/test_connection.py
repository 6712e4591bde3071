"""Connection commands: PING ECHO QUIT RESET HELLO AUTH and CLIENT
ID / SETNAME / GETNAME / SETINFO / LIST / INFO / KILL, plus requirepass.
"""

import re

import pytest
import redis

from util import SYNTAX, err, wrong_args

NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
BAD_NAME = "ERR Client names cannot contain spaces, newlines or special characters."
HELLO_KEYS = {b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"}


def client_fields(line: bytes) -> dict:
    """Parse one CLIENT LIST / CLIENT INFO line into a dict of str -> str."""
    out = {}
    for tok in line.decode().strip().split(" "):
        k, _, v = tok.partition("=")
        out[k] = v
    return out


def client_list(conn) -> list:
    text = conn.execute("CLIENT", "LIST")
    assert isinstance(text, bytes), f"CLIENT LIST: {text!r}"
    return [client_fields(l) for l in text.splitlines() if l.strip()]


# ---------------------------------------------------------------- PING ECHO

def test_ping(raw):
    assert raw.execute("PING") == "PONG"
    assert raw.last_raw == b"+PONG\r\n"
    assert raw.execute("PING", "hello world") == b"hello world"
    assert raw.last_raw == b"$11\r\nhello world\r\n"
    assert raw.execute("PING", "") == b""
    assert raw.execute("ping") == "PONG"
    assert err(raw, "PING", "a", "b") == wrong_args("ping")


def test_ping_redis_py(r):
    assert r.ping() is True


def test_echo(raw):
    assert raw.execute("ECHO", "hello") == b"hello"
    assert raw.execute("ECHO", b"\x00\r\n\xff") == b"\x00\r\n\xff"
    assert raw.execute("ECHO", "") == b""
    assert err(raw, "ECHO") == wrong_args("echo")
    assert err(raw, "ECHO", "a", "b") == wrong_args("echo")


# ---------------------------------------------------------------------- QUIT

def test_quit_replies_ok_then_closes(server, r):
    c = server.raw()
    assert c.execute("QUIT") == "OK"
    assert c.is_closed_by_peer(timeout=5)


def test_quit_flushes_pipelined_replies_first(server, r):
    c = server.raw()
    c.send_raw(b"SET q 1\r\nGET q\r\nQUIT\r\nGET q\r\n")
    assert c.read_reply() == "OK"
    assert c.read_reply() == b"1"
    assert c.read_reply() == "OK"
    assert c.read_until_close(timeout=5) == b"", "nothing is executed after QUIT"


# --------------------------------------------------------------------- RESET

def test_reset_restores_connection_state(server, r):
    c = server.raw()
    c.execute("HELLO", "3")
    c.execute("SELECT", "4")
    c.execute("SET", "k", "db4")
    c.execute("CLIENT", "SETNAME", "before-reset")
    c.execute("MULTI")
    assert c.execute("SET", "k", "queued") == "QUEUED"
    assert c.execute("RESET") == "RESET"
    assert c.last_raw == b"+RESET\r\n"
    # Back to RESP2, DB 0, no name, no transaction.
    assert c.execute("GET", "nokey") is None
    assert c.last_raw == b"$-1\r\n"
    assert c.execute("GET", "k") is None
    assert c.execute("CLIENT", "GETNAME") is None
    assert err(c, "EXEC") == "ERR EXEC without MULTI"
    c.execute("SELECT", "4")
    assert c.execute("GET", "k") == b"db4", "the queued SET was discarded"
    c.close()


def test_reset_unwatches(server, r):
    c = server.raw()
    c.execute("WATCH", "w")
    c.execute("RESET")
    r.set("w", "changed")
    assert c.execute("MULTI") == "OK"
    c.execute("SET", "w", "mine")
    assert c.execute("EXEC") == ["OK"], "WATCH was cleared by RESET"
    c.close()


# --------------------------------------------------------------------- HELLO

def test_hello_2(raw):
    reply = raw.execute("HELLO", "2")
    assert isinstance(reply, list), "RESP2 HELLO replies with a flat array"
    m = dict(zip(reply[::2], reply[1::2]))
    assert HELLO_KEYS <= set(m)
    assert m[b"proto"] == 2
    assert m[b"id"] == raw.execute("CLIENT", "ID")
    assert m[b"mode"] == b"standalone"
    assert m[b"role"] == b"master"
    assert re.fullmatch(rb"\d+\.\d+\.\d+", m[b"version"]), m[b"version"]
    assert m[b"server"]
    assert m[b"modules"] == []


def test_hello_no_args_reports_current_protocol(raw):
    reply = raw.execute("HELLO")
    m = dict(zip(reply[::2], reply[1::2]))
    assert m[b"proto"] == 2


def test_hello_3(raw):
    reply = raw.execute("HELLO", "3")
    assert isinstance(reply, dict), "RESP3 HELLO replies with a map"
    assert raw.last_raw.startswith(b"%")
    assert HELLO_KEYS <= set(reply)
    assert reply[b"proto"] == 3
    assert reply[b"id"] == raw.execute("CLIENT", "ID")
    # The connection now speaks RESP3: nulls are "_".
    assert raw.execute("GET", "nokey") is None
    assert raw.last_raw == b"_\r\n"
    # And back to RESP2.
    assert isinstance(raw.execute("HELLO", "2"), list)
    assert raw.execute("GET", "nokey") is None
    assert raw.last_raw == b"$-1\r\n"


def test_hello_setname(raw):
    reply = raw.execute("HELLO", "3", "SETNAME", "myname")
    assert reply[b"proto"] == 3
    assert raw.execute("CLIENT", "GETNAME") == b"myname"
    assert err(raw, "HELLO", "3", "SETNAME", "bad name") == BAD_NAME


def test_hello_auth_without_requirepass(raw):
    # The default user has no password: any password is accepted for "default".
    reply = raw.execute("HELLO", "3", "AUTH", "default", "whatever")
    assert isinstance(reply, dict) and reply[b"proto"] == 3


@pytest.mark.parametrize("version", ["4", "1", "0", "-1"])
def test_hello_unsupported_version(raw, version):
    assert err(raw, "HELLO", version) == "NOPROTO unsupported protocol version"
    # The connection is still usable, still RESP2.
    assert raw.execute("GET", "nokey") is None
    assert raw.last_raw == b"$-1\r\n"


def test_hello_errors(raw):
    assert err(raw, "HELLO", "abc") == "ERR Protocol version is not an integer or out of range"
    assert err(raw, "HELLO", "3", "FOO") == "ERR Syntax error in HELLO option 'FOO'"
    assert err(raw, "HELLO", "3", "AUTH", "default") == "ERR Syntax error in HELLO option 'AUTH'"
    assert err(raw, "HELLO", "3", "SETNAME") == "ERR Syntax error in HELLO option 'SETNAME'"


# ----------------------------------------------------------- AUTH requirepass

def test_auth_without_requirepass_is_an_error(raw):
    msg = err(raw, "AUTH", "x")
    assert msg.startswith("ERR AUTH <password> called without any password configured for the default user")
    # AUTH user pass against the passwordless default user succeeds.
    assert raw.execute("AUTH", "default", "anything") == "OK"
    assert err(raw, "AUTH", "nosuchuser", "pw") == WRONGPASS


@pytest.fixture
def auth_server(server_factory):
    return server_factory("--requirepass", "s3cret pw")


def test_noauth_before_auth(auth_server):
    c = auth_server.raw(auth=False)
    for cmd in (("GET", "k"), ("SET", "k", "v"), ("PING",), ("CLIENT", "ID"), ("DBSIZE",), ("MGET", "a"),
                ("SELECT", "1"), ("KEYS", "*"), ("INFO",), ("CONFIG", "GET", "maxmemory")):
        assert err(c, *cmd) == NOAUTH, cmd
    # Unknown commands are also refused before authentication.
    assert err(c, "NOSUCHCMD").startswith("NOAUTH") or \
        err(c, "NOSUCHCMD").startswith("ERR unknown command")
    assert err(c, "MULTI") == NOAUTH
    c.close()


def test_auth_wrong_then_right(auth_server):
    c = auth_server.raw(auth=False)
    assert err(c, "AUTH", "wrong") == WRONGPASS
    assert err(c, "AUTH", "default", "wrong") == WRONGPASS
    assert err(c, "AUTH", "someone", "s3cret pw") == WRONGPASS
    assert err(c, "GET", "k") == NOAUTH
    assert err(c, "AUTH", "a", "b", "c") == SYNTAX
    assert err(c, "AUTH") == wrong_args("auth")
    assert c.execute("AUTH", "s3cret pw") == "OK"
    assert c.execute("SET", "k", "v") == "OK"
    assert c.execute("GET", "k") == b"v"
    assert c.execute("AUTH", "default", "s3cret pw") == "OK"
    assert err(c, "AUTH", "wrong") == WRONGPASS
    assert c.execute("GET", "k") == b"v", "a failed re-AUTH keeps the connection authenticated"
    c.close()


def test_auth_quit_allowed_before_auth(auth_server):
    c = auth_server.raw(auth=False)
    assert c.execute("QUIT") == "OK"
    assert c.is_closed_by_peer()


def test_hello_with_requirepass(auth_server):
    c = auth_server.raw(auth=False)
    assert err(c, "HELLO", "3").startswith("NOAUTH ")
    assert err(c, "HELLO", "3", "AUTH", "default", "bad") == WRONGPASS
    assert err(c, "GET", "k") == NOAUTH
    reply = c.execute("HELLO", "3", "AUTH", "default", "s3cret pw", "SETNAME", "h")
    assert isinstance(reply, dict) and reply[b"proto"] == 3
    assert c.execute("CLIENT", "GETNAME") == b"h"
    assert c.execute("GET", "nokey") is None and c.last_raw == b"_\r\n"
    c.close()


def test_reset_deauthenticates(auth_server):
    c = auth_server.raw()
    assert c.execute("PING") == "PONG"
    assert c.execute("RESET") == "RESET"
    assert err(c, "GET", "k") == NOAUTH
    c.close()


def test_redis_py_with_password(auth_server):
    good = auth_server.client()
    assert good.set("k", "v") is True
    assert good.get("k") == b"v"
    with pytest.raises(redis.AuthenticationError):
        auth_server.client(password=None).get("k")
    # redis-py 4.3 raises a plain ResponseError for WRONGPASS (newer ones AuthenticationError).
    with pytest.raises(redis.ResponseError, match="^WRONGPASS invalid username-password pair"):
        auth_server.client(password="nope").get("k")


def test_auth_does_not_leak_between_connections(auth_server):
    a = auth_server.raw()
    b = auth_server.raw(auth=False)
    assert a.execute("SET", "k", "v") == "OK"
    assert err(b, "GET", "k") == NOAUTH
    a.close()
    b.close()


# -------------------------------------------------------------------- CLIENT

def test_client_id(server, raw):
    my = raw.execute("CLIENT", "ID")
    assert isinstance(my, int) and my > 0
    assert raw.execute("CLIENT", "ID") == my
    other = server.raw()
    assert other.execute("CLIENT", "ID") > my, "ids increase with each new connection"
    other.close()
    assert err(raw, "CLIENT", "ID", "x").startswith("ERR wrong number of arguments")


def test_client_setname_getname(raw):
    assert raw.execute("CLIENT", "GETNAME") is None
    assert raw.execute("CLIENT", "SETNAME", "worker-1") == "OK"
    assert raw.execute("CLIENT", "GETNAME") == b"worker-1"
    assert raw.execute("CLIENT", "SETNAME", "") == "OK"
    assert raw.execute("CLIENT", "GETNAME") is None, "an empty name clears it"
    for bad in ("a b", "a\nb", "tab\there", "\x01"):
        assert err(raw, "CLIENT", "SETNAME", bad) == BAD_NAME
    assert err(raw, "CLIENT", "SETNAME").startswith("ERR wrong number of arguments")


def test_client_getname_redis_py(r):
    assert r.client_setname("py") is True
    assert r.client_getname() == "py"  # redis-py decodes this one itself


def test_client_list(server, raw):
    raw.execute("CLIENT", "SETNAME", "lister")
    raw.execute("SELECT", "3")
    other = server.raw()
    other.execute("CLIENT", "SETNAME", "other")
    my_id = raw.execute("CLIENT", "ID")
    other_id = other.execute("CLIENT", "ID")
    clients = {int(c["id"]): c for c in client_list(raw)}
    assert my_id in clients and other_id in clients
    me = clients[my_id]
    assert me["name"] == "lister"
    assert me["db"] == "3"
    host, port = me["addr"].rsplit(":", 1)
    assert host == "127.0.0.1"
    assert int(port) == raw.sock.getsockname()[1]
    assert clients[other_id]["name"] == "other"
    assert clients[other_id]["addr"] == "127.0.0.1:%d" % other.sock.getsockname()[1]
    other.close()


def test_client_list_id_filter(server, raw):
    other = server.raw()
    other_id = other.execute("CLIENT", "ID")
    lines = raw.execute("CLIENT", "LIST", "ID", str(other_id)).splitlines()
    assert len(lines) == 1
    assert client_fields(lines[0])["id"] == str(other_id)
    other.close()


def test_client_info(raw):
    raw.execute("CLIENT", "SETNAME", "me")
    info = raw.execute("CLIENT", "INFO")
    assert isinstance(info, bytes) and info.endswith(b"\n")
    f = client_fields(info)
    assert int(f["id"]) == raw.execute("CLIENT", "ID")
    assert f["name"] == "me"
    assert f["addr"] == "127.0.0.1:%d" % raw.sock.getsockname()[1]
    assert f["db"] == "0"


def test_client_kill_by_id(server, raw):
    victim = server.raw()
    vid = victim.execute("CLIENT", "ID")
    assert raw.execute("CLIENT", "KILL", "ID", str(vid)) == 1
    assert victim.is_closed_by_peer(timeout=5)
    assert raw.execute("CLIENT", "KILL", "ID", str(vid)) == 0, "already gone"
    assert raw.execute("CLIENT", "KILL", "ID", "999999999") == 0
    assert err(raw, "CLIENT", "KILL", "ID", "abc").startswith("ERR client-id should be")
    assert vid not in {int(c["id"]) for c in client_list(raw)}


def test_client_kill_by_addr(server, raw):
    # Each victim runs a command first: a connection the server has not
    # accepted yet is not a client yet (redis-server races the same way).
    victim = server.raw()
    assert victim.execute("PING") == "PONG"
    addr = "127.0.0.1:%d" % victim.sock.getsockname()[1]
    assert raw.execute("CLIENT", "KILL", "ADDR", addr) == 1
    assert victim.is_closed_by_peer(timeout=5)
    assert raw.execute("CLIENT", "KILL", "ADDR", addr) == 0
    # The old form, CLIENT KILL ip:port, replies OK or an error.
    victim2 = server.raw()
    assert victim2.execute("PING") == "PONG"
    addr2 = "127.0.0.1:%d" % victim2.sock.getsockname()[1]
    assert raw.execute("CLIENT", "KILL", addr2) == "OK"
    assert victim2.is_closed_by_peer(timeout=5)
    assert err(raw, "CLIENT", "KILL", "127.0.0.1:1") == "ERR No such client"
    assert raw.execute("PING") == "PONG"


def test_client_kill_self(raw):
    my = raw.execute("CLIENT", "ID")
    # SKIPME defaults to yes with the filter form.
    assert raw.execute("CLIENT", "KILL", "ID", str(my)) == 0
    assert raw.execute("CLIENT", "KILL", "ID", str(my), "SKIPME", "no") == 1
    assert raw.is_closed_by_peer(timeout=5)


def test_client_kill_errors(raw):
    assert err(raw, "CLIENT", "KILL", "FOO", "bar") == SYNTAX


def test_client_unknown_subcommand(raw):
    assert err(raw, "CLIENT", "FOO") == "ERR unknown subcommand 'FOO'. Try CLIENT HELP."
    assert err(raw, "CLIENT").startswith("ERR wrong number of arguments")


@pytest.mark.kvpool_only
def test_client_setinfo(raw):
    # CLIENT SETINFO is redis 7.2; redis-py >= 5 and other clients send it on connect.
    assert raw.execute("CLIENT", "SETINFO", "lib-name", "redis-py") == "OK"
    assert raw.execute("CLIENT", "SETINFO", "lib-ver", "4.3.4") == "OK"
    f = client_fields(raw.execute("CLIENT", "INFO"))
    assert f.get("lib-name") == "redis-py"
    assert f.get("lib-ver") == "4.3.4"
    assert err(raw, "CLIENT", "SETINFO", "lib-name", "a b").startswith("ERR ")
    assert err(raw, "CLIENT", "SETINFO", "foo", "bar").startswith("ERR ")
    assert err(raw, "CLIENT", "SETINFO", "lib-name").startswith("ERR wrong number of arguments")
