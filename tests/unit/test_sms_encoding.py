"""SMS encoding: GSM-7 vs UCS-2, concatenation UDH, part sizes, never splitting a character."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.notify.channels.encoding import (
    DCS_GSM7,
    DCS_UCS2,
    ESM_UDHI,
    GSM7_BASIC,
    GSM7_EXTENSION,
    MAX_TP_UD,
    MessageTooLong,
    concat_info,
    decode_gsm7,
    encode_sms,
    gsm7_encodable,
    pack_septets,
    reassemble,
    sms_length,
)
from tests.support.profile import examples


def test_ascii_alarm_is_one_gsm7_sms_without_udh():
    enc = encode_sms("ALARM T-101 level HH 18.6 m")
    assert (enc.data_coding, enc.esm_class, len(enc.parts)) == (DCS_GSM7, 0, 1)
    assert enc.parts[0].udh == b""
    assert enc.parts[0].short_message == b"ALARM T-101 level HH 18.6 m"


def test_gsm7_maps_specials_to_their_septets():
    enc = encode_sms("@£$_€")
    # @ = 0x00, £ = 0x01, $ = 0x02, _ = 0x11, € = ESC 0x65
    assert enc.parts[0].payload == bytes([0x00, 0x01, 0x02, 0x11, 0x1B, 0x65])
    assert sms_length("@£$_€") == (DCS_GSM7, 6, 1)


def test_any_chinese_character_forces_ucs2():
    enc = encode_sms("Tank 1 高")
    assert enc.data_coding == DCS_UCS2
    assert enc.parts[0].short_message == "Tank 1 高".encode("utf-16-be")
    assert not gsm7_encodable("高")


def test_pack_septets_known_vector():
    # TS 23.038 example: "hellohello" packs to E8 32 9B FD 46 97 D9 EC 37
    assert pack_septets(b"hellohello").hex().upper() == "E8329BFD4697D9EC37"


def test_ucs2_exactly_70_is_single_71_is_two_parts():
    assert len(encode_sms("危" * 70).parts) == 1
    enc = encode_sms("危" * 71, reference=0x2A)
    assert enc.esm_class == ESM_UDHI
    assert [p.udh.hex(" ") for p in enc.parts] == ["05 00 03 2a 02 01", "05 00 03 2a 02 02"]
    assert [p.units for p in enc.parts] == [67, 4]


def test_chinese_alarm_of_120_chars_is_two_exact_parts():
    text = ("危险品泄漏警报" * 18)[:120]
    enc = encode_sms(text, reference=7)
    assert len(enc.parts) == 2
    p1, p2 = enc.parts
    assert p1.short_message == bytes.fromhex("050003070201") + text[:67].encode("utf-16-be")
    assert p2.short_message == bytes.fromhex("050003070202") + text[67:].encode("utf-16-be")
    assert len(p1.short_message) == 140


def test_gsm7_160_single_161_splits_153():
    assert len(encode_sms("a" * 160).parts) == 1
    enc = encode_sms("a" * 161, reference=1)
    assert [p.units for p in enc.parts] == [153, 8]
    assert [len(p.tp_ud()) for p in enc.parts] == [140, 14]  # 6 + ceil((1 fill + 8*7) / 8)


def test_extension_char_counts_double_and_escape_pair_is_never_split():
    assert len(encode_sms("€" * 80).parts) == 1  # 160 septets
    assert len(encode_sms("€" * 81).parts) == 2
    enc = encode_sms("a" * 152 + "€" + "b" * 10, reference=3)
    # the ESC pair would be septets 153-154: it moves whole into part 2
    assert [p.units for p in enc.parts] == [152, 12]
    assert enc.parts[1].payload[:2] == bytes([0x1B, 0x65])


def test_surrogate_pair_is_never_split():
    text = "危" * 66 + "🔥" + "险" * 5
    enc = encode_sms(text, reference=9)
    assert [p.units for p in enc.parts] == [66, 7]
    assert enc.parts[1].text.startswith("🔥")


def test_udh_gsm7_part_packs_with_one_fill_bit():
    enc = encode_sms("A" * 161, reference=0)
    tp = enc.parts[0].tp_ud()
    assert tp[:6] == bytes.fromhex("050003000201")
    # 1 fill bit, then 'A' (0x41) from bit 1: first packed octet = (0x41 << 1) & 0xFF
    assert tp[6] == 0x82


def test_too_long_raises():
    with pytest.raises(MessageTooLong):
        encode_sms("危" * (67 * 255 + 1))


def test_concat_info_and_decode():
    assert concat_info(bytes.fromhex("050003AB0302")) == (0xAB, 3, 2)
    assert concat_info(bytes.fromhex("0608041234020a")) == (0x1234, 2, 10)
    assert decode_gsm7(bytes([0x00, 0x1B, 0x65, 0x41])) == "@€A"


texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM7_BASIC.replace("\x1b", "") + "".join(GSM7_EXTENSION)),
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1F64F),
        st.sampled_from("，。：；！？（）【】"),
    ),
    max_size=700,
)


@settings(max_examples=examples(300), deadline=None)
@given(texts, st.integers(0, 255))
def test_parts_reassemble_and_fit(text, ref):
    enc = encode_sms(text, reference=ref)
    has_udh = bool(enc.esm_class & ESM_UDHI)
    assert reassemble([p.short_message for p in enc.parts], enc.data_coding, has_udh) == text
    assert "".join(p.text for p in enc.parts) == text
    for seq, p in enumerate(enc.parts, start=1):
        assert len(p.tp_ud()) <= MAX_TP_UD
        if len(enc.parts) > 1:
            assert concat_info(p.udh) == (ref, len(enc.parts), seq)
            assert p.units <= (153 if enc.data_coding == DCS_GSM7 else 67)
        else:
            assert p.udh == b""
        if enc.data_coding == DCS_UCS2:
            p.payload.decode("utf-16-be")  # strict: no lone surrogate at a part edge
    assert (enc.data_coding == DCS_UCS2) == (not gsm7_encodable(text))
