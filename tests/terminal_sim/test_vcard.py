"""The citycard card application and the virtual card, without pcscd: every APDU and status
word of the application, and the vpcd wire protocol spoken to a stand-in for the vpcd driver."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

import pytest
from nacl.signing import SigningKey

from terminal_sim import card_app as app
from terminal_sim.vcard import (
    ATR,
    CTRL_ATR,
    CTRL_OFF,
    CTRL_ON,
    CTRL_RESET,
    VirtualCard,
    encode_message,
    make_atr,
    read_message,
)

ISSUER = SigningKey(hashlib.sha256(b"test issuer").digest())
CARD_SEED = hashlib.sha256(b"test card").digest()


def sw(resp: bytes) -> int:
    return int.from_bytes(resp[-2:], "big")


def run(applet: app.CityCardApplet, apdu: list[int]) -> tuple[bytes, int]:
    resp = applet.process(bytes(apdu))
    return resp[:-2], sw(resp)


@pytest.fixture
def plain() -> app.CityCardApplet:
    return app.CityCardApplet(app.personalise("card-7"))


@pytest.fixture
def keyed() -> app.CityCardApplet:
    return app.CityCardApplet(app.personalise("card-8", issuer_key=ISSUER, card_seed=CARD_SEED))


def test_aid_is_proprietary_citycard() -> None:
    assert app.AID.hex().upper() == "F0434954594341524401"
    assert 5 <= len(app.AID) <= 16 and app.AID[0] >> 4 == 0xF


def test_select_answers_fci(plain: app.CityCardApplet, keyed: app.CityCardApplet) -> None:
    data, status = run(plain, app.select_apdu())
    assert status == app.SW_OK
    fci = app.parse_fci(data)
    assert (fci.aid, fci.version, fci.has_card_key) == (app.AID, 1, False)
    data, status = run(keyed, app.select_apdu())
    assert status == app.SW_OK and app.parse_fci(data).has_card_key
    # P2 = 0C: select without FCI.
    data, status = run(plain, [0x00, 0xA4, 0x04, 0x0C, len(app.AID), *app.AID])
    assert (data, status) == (b"", app.SW_OK)


def test_nothing_but_select_before_selection(plain: app.CityCardApplet) -> None:
    assert run(plain, app.get_data_apdu(app.TAG_TOKEN))[1] == app.SW_CONDITIONS_NOT_SATISFIED
    chal = app.internal_authenticate_apdu(bytes(32))
    assert run(plain, chal)[1] == app.SW_CONDITIONS_NOT_SATISFIED


def test_get_data_token(plain: app.CityCardApplet) -> None:
    run(plain, app.select_apdu())
    assert run(plain, app.get_data_apdu(app.TAG_TOKEN)) == (b"card-7", app.SW_OK)
    assert run(plain, app.get_data_apdu(app.TAG_CARD_KEY))[1] == app.SW_DATA_NOT_FOUND
    assert run(plain, app.get_data_apdu(app.TAG_ISSUER_CERT))[1] == app.SW_DATA_NOT_FOUND
    assert run(plain, app.get_data_apdu(0x5F20))[1] == app.SW_DATA_NOT_FOUND


def test_other_aid_deselects(plain: app.CityCardApplet) -> None:
    run(plain, app.select_apdu())
    assert run(plain, app.select_apdu(bytes.fromhex("A0000000041010")))[1] == app.SW_APP_NOT_FOUND
    assert run(plain, app.get_data_apdu(app.TAG_TOKEN))[1] == app.SW_CONDITIONS_NOT_SATISFIED


def test_reset_deselects(plain: app.CityCardApplet) -> None:
    run(plain, app.select_apdu())
    plain.reset()
    assert run(plain, app.get_data_apdu(app.TAG_TOKEN))[1] == app.SW_CONDITIONS_NOT_SATISFIED


def test_bad_commands(plain: app.CityCardApplet) -> None:
    assert run(plain, [0x00, 0xA4])[1] == app.SW_WRONG_LENGTH  # shorter than a header
    assert run(plain, [0x00, 0xA4, 0x04, 0x00, 0x05, 0xF0])[1] == app.SW_WRONG_LENGTH  # Lc lies
    assert run(plain, [0x00, 0xA4, 0x04, 0x00, 0x00, 0x00, 0x01, 0xF0])[1] == app.SW_WRONG_LENGTH
    assert run(plain, [0x80, 0xCA, 0xDF, 0x01, 0x00])[1] == app.SW_CLA_NOT_SUPPORTED
    assert run(plain, [0xFF, 0xCA, 0x00, 0x00, 0x00])[1] == app.SW_CLA_NOT_SUPPORTED  # GET UID
    assert run(plain, [0x00, 0xB0, 0x00, 0x00, 0x00])[1] == app.SW_INS_NOT_SUPPORTED
    sel = app.select_apdu()
    sel[2] = 0x00  # select by file id
    assert run(plain, sel)[1] == app.SW_INCORRECT_P1P2


def test_wrong_le_tells_the_length(plain: app.CityCardApplet) -> None:
    run(plain, app.select_apdu())
    apdu = app.get_data_apdu(app.TAG_TOKEN)
    apdu[-1] = 2
    assert run(plain, apdu) == (b"", 0x6C00 | len("card-7"))
    apdu[-1] = len("card-7")
    assert run(plain, apdu) == (b"card-7", app.SW_OK)


def test_internal_authenticate_proves_the_card(keyed: app.CityCardApplet) -> None:
    run(keyed, app.select_apdu())
    token = run(keyed, app.get_data_apdu(app.TAG_TOKEN))[0].decode()
    pub = run(keyed, app.get_data_apdu(app.TAG_CARD_KEY))[0]
    cert = run(keyed, app.get_data_apdu(app.TAG_ISSUER_CERT))[0]
    challenge = bytes(range(32))
    sig, status = run(keyed, app.internal_authenticate_apdu(challenge))
    assert status == app.SW_OK and len(sig) == 64 and len(pub) == 32 and len(cert) == 64
    issuers = [ISSUER.verify_key]
    assert app.verify_card(token, pub, cert, challenge, sig, issuers)
    # Another challenge, another token (a copied key with a changed token), another issuer:
    assert not app.verify_card(token, pub, cert, bytes(32), sig, issuers)
    assert not app.verify_card("card-9", pub, cert, challenge, sig, issuers)
    assert not app.verify_card(token, pub, cert, challenge, sig, [SigningKey.generate().verify_key])
    # A clone with its own key cannot present the genuine card's certificate.
    clone = SigningKey.generate()
    clone_sig = clone.sign(app.card_auth_bytes(token, challenge)).signature
    assert not app.verify_card(token, bytes(clone.verify_key), cert, challenge, clone_sig, issuers)
    assert not app.verify_card(token, b"short", cert, challenge, sig, issuers)


def test_internal_authenticate_refusals(
    plain: app.CityCardApplet, keyed: app.CityCardApplet
) -> None:
    run(plain, app.select_apdu())
    run(keyed, app.select_apdu())
    assert run(plain, app.internal_authenticate_apdu(bytes(32)))[1] == app.SW_FUNCTION_NOT_SUPPORTED
    assert run(keyed, app.internal_authenticate_apdu(bytes(8)))[1] == app.SW_WRONG_LENGTH
    apdu = app.internal_authenticate_apdu(bytes(32))
    apdu[2] = 1
    assert run(keyed, apdu)[1] == app.SW_INCORRECT_P1P2


def test_token_must_be_a_protocol_identifier() -> None:
    with pytest.raises(ValueError):
        app.personalise("card with spaces")


def test_tlv_and_apdu_helpers() -> None:
    assert app.parse_tlv(app.tlv(0xDF01, b"x" * 200)) == {0xDF01: b"x" * 200}
    for bad in (b"\x6f", b"\x6f\x05ab", b"\xdf", b"\x6f\x82\x00\x01"):
        with pytest.raises(app.CardError):
            app.parse_tlv(bad)
    with pytest.raises(app.CardError):
        app.parse_fci(app.tlv(0x6F, app.tlv(0x84, b"\xa0\x00")))
    assert app.build_apdu(0, 0xCA, 0xDF, 0x01, le=256) == [0, 0xCA, 0xDF, 0x01, 0]
    with pytest.raises(ValueError):
        app.build_apdu(0, 0xCA, 0, 0, bytes(256))
    assert app.parse_command(bytes([0, 0xB0, 0, 0])) == app.Command(0, 0xB0, 0, 0, b"", None)


def test_atr_check_byte() -> None:
    assert ATR.hex() == "3b88800143495459434152441a"
    tck = 0
    for b in ATR[1:]:
        tck ^= b
    assert tck == 0  # T0..TCK XOR to zero when T=1 is offered
    with pytest.raises(ValueError):
        make_atr(bytes(16))


# --------------------------------------------------------------------------------------------
# The vpcd wire protocol, against a stand-in for the driver's listening socket
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fake_vpcd() -> Iterator[socket.socket]:
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(5)
    try:
        yield srv
    finally:
        srv.close()


def exchange(conn: socket.socket, payload: bytes) -> bytes | None:
    conn.sendall(encode_message(payload))
    return read_message(conn)


def test_vpcd_protocol(fake_vpcd: socket.socket) -> None:
    port = fake_vpcd.getsockname()[1]
    card = VirtualCard(app.personalise("card-7"), port=port)
    card.insert(timeout=5)
    conn, _ = fake_vpcd.accept()
    conn.settimeout(5)
    try:
        assert card.inserted
        assert exchange(conn, bytes([CTRL_ATR])) == ATR  # vpcd's presence poll
        conn.sendall(encode_message(bytes([CTRL_ON])))  # no answer to power on / reset / off
        resp = exchange(conn, bytes(app.select_apdu()))
        assert resp is not None and sw(resp) == app.SW_OK
        assert card.powered
        assert exchange(conn, bytes(app.get_data_apdu(app.TAG_TOKEN))) == b"card-7\x90\x00"
        conn.sendall(encode_message(bytes([CTRL_RESET])))
        resp = exchange(conn, bytes(app.get_data_apdu(app.TAG_TOKEN)))
        assert resp is not None and sw(resp) == app.SW_CONDITIONS_NOT_SATISFIED
        conn.sendall(encode_message(bytes([CTRL_OFF])))
        conn.sendall(encode_message(bytes([0x7F])))  # unknown control: ignored
        assert exchange(conn, bytes([CTRL_ATR])) == ATR
        assert not card.powered
        assert len(card.apdus) == 3
    finally:
        card.remove()
    assert not card.inserted
    assert conn.recv(16) == b""  # removal closes the connection
    conn.close()
    # Insert again: a new connection, a new session.
    card.insert(timeout=5)
    conn2, _ = fake_vpcd.accept()
    conn2.settimeout(5)
    with conn2:
        assert exchange(conn2, bytes([CTRL_ATR])) == ATR
        card.remove()


def test_vpcd_closing_the_connection_ends_the_card(fake_vpcd: socket.socket) -> None:
    card = VirtualCard(app.personalise("card-7"), port=fake_vpcd.getsockname()[1])
    card.insert(timeout=5)
    conn, _ = fake_vpcd.accept()
    conn.close()
    assert card._thread is not None
    card._thread.join(5)
    assert not card.inserted
    card.remove()


def test_insert_gives_up_without_vpcd() -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]
    card = VirtualCard(app.personalise("card-7"), port=port)
    with pytest.raises(OSError):
        card.insert(timeout=0.3)


def test_tap_cryptogram_counts_up_and_signs_the_tap(keyed: app.CityCardApplet) -> None:
    from actors.card_auth import verify_tap_cryptogram

    assert keyed.process(bytes(app.select_apdu()))[-2:] == b"\x90\x00"
    key_hex = bytes(app.nacl.signing.SigningKey(CARD_SEED).verify_key).hex()
    for want in (1, 2):
        answer = keyed.process(bytes(app.tap_cryptogram_apdu("gate-9", f"tap-{want}")))
        assert answer[-2:] == b"\x90\x00"
        counter, sig = app.parse_tap_cryptogram(answer[:-2])
        assert counter == want
        assert verify_tap_cryptogram(key_hex, "card-8", "gate-9", f"tap-{want}", counter, sig)
        assert not verify_tap_cryptogram(key_hex, "card-8", "gate-X", f"tap-{want}", counter, sig)


def test_tap_cryptogram_refusals(plain: app.CityCardApplet, keyed: app.CityCardApplet) -> None:
    apdu = bytes(app.tap_cryptogram_apdu("gate-9", "tap-1"))
    assert keyed.process(apdu) == b"\x69\x85"  # not selected
    plain.process(bytes(app.select_apdu()))
    assert plain.process(apdu) == b"\x6a\x81"  # a card without a key cannot sign
    keyed.process(bytes(app.select_apdu()))
    bad = bytes(app.build_apdu(0x80, 0xAE, 0, 0, b"no newline here", 256))
    assert keyed.process(bad) == b"\x67\x00"
    assert keyed.counter == 0  # refusals spend nothing
