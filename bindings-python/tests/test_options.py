"""The option keywords: the native module's table (``src/options.rs``) and
the TypedDicts of ``shmsock._options`` list the same keywords for each entry
point, and every entry point refuses a keyword it does not take."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Dict

import pytest

import shmsock
from shmsock import _options, _shmsock, aio

TYPED = {
    "connect": _options.ConnectOptions,
    "client": _options.ClientOptions,
    "listen": _options.ListenOptions,
    "server": _options.ServerOptions,
    "subscribe": _options.SubscribeOptions,
    "publish": _options.PublishOptions,
}


def test_typed_dicts_match_the_native_table() -> None:
    native = _shmsock._option_keywords()
    assert set(native) == set(TYPED)
    for entry, typed in TYPED.items():
        assert typed.__required_keys__ == frozenset(), entry
        assert set(typed.__optional_keys__) == set(native[entry]), entry


def test_public_names_are_the_typed_dicts() -> None:
    for typed in TYPED.values():
        assert getattr(shmsock, typed.__name__) is typed
    assert shmsock.KeyLike is _options.KeyLike


def _calls(name: str, keypair: shmsock.Keypair) -> Dict[str, Callable[..., Any]]:
    key = keypair.public_key
    return {
        "Stream.connect()": lambda **o: shmsock.Stream.connect(name, server_key=key, **o),
        "shmsock.connect": lambda **o: shmsock.connect(name, server_key=key, **o),
        "Client()": lambda **o: shmsock.Client(name, server_key=key, **o),
        "Listener.bind()": lambda **o: shmsock.Listener.bind(name, keypair=keypair, **o),
        "shmsock.bind": lambda **o: shmsock.bind(name, keypair=keypair, **o),
        "Server()": lambda **o: shmsock.Server(name, keypair=keypair, **o),
        "Subscriber.connect()": lambda **o: shmsock.Subscriber.connect(name, server_key=key, **o),
        "shmsock.subscribe": lambda **o: shmsock.subscribe(name, server_key=key, **o),
        "Publisher.bind()": lambda **o: shmsock.Publisher.bind(name, keypair=keypair, **o),
        "aio.bind": lambda **o: aio.bind(name, keypair=keypair, **o),
        "aio.Publisher.bind": lambda **o: aio.Publisher.bind(name, keypair=keypair, **o),
    }


@pytest.mark.parametrize("call", list(_calls("x", shmsock.Keypair.generate())))
def test_unknown_keyword_is_a_type_error(call: str, name: str, server_keypair: shmsock.Keypair) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'ring_sise'"):
        _calls(name, server_keypair)[call](ring_sise=4096)


@pytest.mark.parametrize(
    "call, keyword",
    [
        ("Server()", "send_timeout"),  # Connection.send never waits
        ("Client()", "backend"),  # a server's option
        ("Listener.bind()", "keypair_file"),
        ("Subscriber.connect()", "ring_size"),  # a topic's ring is the publisher's
        ("Publisher.bind()", "recv_timeout"),
        ("Stream.connect()", "allowed_clients"),  # a server's option
    ],
)
def test_keyword_of_another_entry_point_is_refused(
    call: str, keyword: str, name: str, server_keypair: shmsock.Keypair
) -> None:
    with pytest.raises(
        TypeError,
        match=f"^{call.replace('(', '[(]').replace(')', '[)]')} got an unexpected keyword argument '{keyword}'",
    ):
        _calls(name, server_keypair)[call](**{keyword: None})


def test_aio_connect_refuses_unknown_keywords(name: str, server_keypair: shmsock.Keypair) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
            await aio.connect(name, server_key=server_keypair.public_key, colour=1)  # type: ignore[call-arg]

    asyncio.run(main())


def test_option_values_are_checked(name: str, server_keypair: shmsock.Keypair) -> None:
    bind = _calls(name, server_keypair)["Listener.bind()"]
    with pytest.raises(TypeError, match="argument 'ring_size'"):
        bind(ring_size="big")
    with pytest.raises(OverflowError, match="argument 'ring_size'"):
        bind(ring_size=-1)
    with pytest.raises(TypeError, match="require_chacha must be True or False"):
        bind(require_chacha="yes")
    with pytest.raises(TypeError, match="backend must be a str"):
        bind(backend=1)
    with pytest.raises(ValueError, match="backend must be 'memfd' or 'named'"):
        bind(backend="disk")
    with pytest.raises(TypeError, match="send_timeout must be a number"):
        bind(send_timeout="1s")
    with pytest.raises(TypeError, match="argument 'max_queued_bytes'"):
        _calls(name, server_keypair)["Server()"](max_queued_bytes=1.5)
    with pytest.raises(TypeError, match="argument 'max_reassembly_bytes'"):
        bind(max_reassembly_bytes="64 MiB")
    with pytest.raises(OverflowError, match="argument 'max_reassembly_bytes'"):
        _calls(name, server_keypair)["Server()"](max_reassembly_bytes=-1)
    with pytest.raises(TypeError, match="argument 'max_connections'"):
        bind(max_connections="many")
    with pytest.raises(OverflowError, match="argument 'max_pending_handshakes'"):
        _calls(name, server_keypair)["Publisher.bind()"](max_pending_handshakes=-1)
    with pytest.raises(TypeError, match="argument 'dispatch_threads'"):
        _calls(name, server_keypair)["Server()"](dispatch_threads=1.5)
    with pytest.raises(ValueError, match="policy must be 'reliable' or 'latest'"):
        _calls(name, server_keypair)["Publisher.bind()"](policy="newest")


def test_none_means_the_default(name: str, server_keypair: shmsock.Keypair) -> None:
    """Every option given as None behaves as if omitted (except a topic's
    rekey_interval, where None means 'only when a subscriber leaves')."""
    keywords = _shmsock._option_keywords()["listen"]
    with shmsock.Listener.bind(name, keypair=server_keypair, **{k: None for k in keywords}) as listener:
        assert listener.name == name
    with shmsock.Publisher.bind(name, keypair=server_keypair, rekey_interval=None) as publisher:
        assert publisher.subscriber_count == 0
