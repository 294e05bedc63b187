"""SMS text encoding (pure): GSM 03.38 7-bit or UCS-2, and splitting into concatenated parts.

3GPP TS 23.038 (alphabets) and TS 23.040 §9.2.3.24.1 (concatenation UDH). A text that the GSM 7-bit
default alphabet (plus its extension table) can carry goes as GSM-7: 160 septets in one SMS, 153 per
part when concatenated; extension-table characters (€ [ ] { } ~ ^ | \\ and form feed) take two
septets, ESC + code, and a part never ends between the two. Anything else (any Chinese character)
goes as UCS-2 (UTF-16BE, as every handset decodes it): 70 code units in one SMS, 67 per part; a
character outside the BMP (emoji) is a surrogate pair, and a part never ends between the two halves.

A concatenated part starts with the 6-octet UDH 05 00 03 <ref> <total> <seq> (IEI 0x00, 8-bit
reference) and is sent with the UDHI bit (esm_class 0x40 in SMPP).

Payload forms:
- `Part.short_message` is what SMPP submit_sm carries: UDH + UTF-16BE, or UDH + GSM-7 *unpacked*
  (one septet per octet, data_coding 0x00 = the SMSC default alphabet, as SMSCs expect over SMPP).
- `Part.tp_ud()` is the over-the-air TP-User-Data: for GSM-7 the septets packed 8-in-7 after the UDH
  with fill bits to the next septet boundary. It is always at most 140 octets; that is the limit
  the part sizes above come from.
"""

from __future__ import annotations

from dataclasses import dataclass

DCS_GSM7 = 0x00  # SMPP data_coding: SMSC default alphabet
DCS_UCS2 = 0x08  # SMPP data_coding: UCS-2 (ISO/IEC 10646)
ESM_UDHI = 0x40  # SMPP esm_class bit: short_message starts with a UDH

GSM7_SINGLE = 160  # septets
GSM7_PART = 153  # 160 - ceil((6 octets UDH * 8 bits) / 7 bits)
UCS2_SINGLE = 70  # UTF-16 code units (140 octets)
UCS2_PART = 67  # (140 - 6) // 2
MAX_PARTS = 255  # the 8-bit total field of the concatenation UDH
MAX_TP_UD = 140  # octets of user data in one SMS

ESC = 0x1B

# TS 23.038 §6.2.1 default alphabet; index = septet value. 0x1B is the escape to the extension table.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# TS 23.038 §6.2.1.1 extension table (after ESC)
GSM7_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

assert len(GSM7_BASIC) == 128
_BASIC_CODE = {ch: i for i, ch in enumerate(GSM7_BASIC) if i != ESC}
_BASIC_CHAR = {i: ch for ch, i in _BASIC_CODE.items()}
_EXT_CHAR = {code: ch for ch, code in GSM7_EXTENSION.items()}


class MessageTooLong(ValueError):
    """The text needs more than 255 concatenated parts."""


@dataclass(frozen=True, slots=True)
class Part:
    """One SMS of a (possibly concatenated) message."""

    udh: bytes  # b"" for a single SMS, else 05 00 03 ref total seq
    payload: bytes  # UTF-16BE, or unpacked GSM-7 septets (one per octet)
    text: str  # the characters this part carries
    data_coding: int

    @property
    def short_message(self) -> bytes:
        """The SMPP short_message: UDH followed by the payload."""
        return self.udh + self.payload

    @property
    def units(self) -> int:
        """Septets (GSM-7) or UTF-16 code units (UCS-2) in this part."""
        return len(self.payload) if self.data_coding == DCS_GSM7 else len(self.payload) // 2

    def tp_ud(self) -> bytes:
        """The over-the-air TP-User-Data (UDH + payload; GSM-7 packed with fill bits)."""
        if self.data_coding == DCS_UCS2:
            return self.udh + self.payload
        udh_bits = len(self.udh) * 8
        fill = (7 - udh_bits % 7) % 7
        return self.udh + pack_septets(self.payload, fill_bits=fill)


@dataclass(frozen=True, slots=True)
class EncodedSms:
    """A text ready for sending: its coding and its parts in order."""

    text: str
    data_coding: int  # DCS_GSM7 or DCS_UCS2
    esm_class: int  # ESM_UDHI when the parts carry a UDH, else 0
    parts: tuple[Part, ...]
    reference: int | None  # concatenation reference, None for a single SMS

    @property
    def is_unicode(self) -> bool:
        return self.data_coding == DCS_UCS2


# ---- detection and unit conversion


def gsm7_encodable(text: str) -> bool:
    """True if every character is in the GSM 7-bit default alphabet or its extension table."""
    return all(ch in _BASIC_CODE or ch in GSM7_EXTENSION for ch in text)


def _gsm7_units(text: str) -> list[bytes]:
    """One entry per character: its septets (1, or 2 for ESC + extension code)."""
    return [
        bytes([ESC, GSM7_EXTENSION[ch]]) if ch in GSM7_EXTENSION else bytes([_BASIC_CODE[ch]]) for ch in text
    ]


def _ucs2_units(text: str) -> list[bytes]:
    """One entry per character: its UTF-16BE bytes (2, or 4 for a surrogate pair)."""
    return [ch.encode("utf-16-be") for ch in text]


def sms_length(text: str) -> tuple[int, int, int]:
    """(data_coding, units, parts) the text would need; units are septets or UTF-16 code units."""
    enc = encode_sms(text)
    return enc.data_coding, sum(p.units for p in enc.parts), len(enc.parts)


# ---- encoding


def concat_udh(reference: int, total: int, seq: int) -> bytes:
    """The 6-octet concatenation UDH with an 8-bit reference (TS 23.040 §9.2.3.24.1)."""
    if not (0 <= reference <= 0xFF and 1 <= seq <= total <= MAX_PARTS):
        raise ValueError(f"bad concatenation header ref={reference} total={total} seq={seq}")
    return bytes([0x05, 0x00, 0x03, reference, total, seq])


def encode_sms(text: str, reference: int = 0, force_ucs2: bool = False) -> EncodedSms:
    """Choose GSM-7 or UCS-2 for the text and split it into parts (UDH + payload)."""
    if not force_ucs2 and gsm7_encodable(text):
        dcs, units, single, per_part, unit_size = DCS_GSM7, _gsm7_units(text), GSM7_SINGLE, GSM7_PART, 1
    else:
        dcs, units, single, per_part, unit_size = DCS_UCS2, _ucs2_units(text), UCS2_SINGLE, UCS2_PART, 2
    total_units = sum(len(u) for u in units) // unit_size
    if total_units <= single:
        part = Part(b"", b"".join(units), text, dcs)
        return EncodedSms(text, dcs, 0, (part,), None)
    # greedy: fill each part up to per_part units without cutting a character (ESC pair, surrogates)
    chunks: list[tuple[int, int]] = []  # (start char, end char)
    start, used = 0, 0
    for i, u in enumerate(units):
        n = len(u) // unit_size
        if used + n > per_part:
            chunks.append((start, i))
            start, used = i, 0
        used += n
    chunks.append((start, len(units)))
    if len(chunks) > MAX_PARTS:
        raise MessageTooLong(f"text needs {len(chunks)} parts, at most {MAX_PARTS} are possible")
    parts = tuple(
        Part(concat_udh(reference, len(chunks), seq), b"".join(units[a:b]), text[a:b], dcs)
        for seq, (a, b) in enumerate(chunks, start=1)
    )
    return EncodedSms(text, dcs, ESM_UDHI, parts, reference)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack 7-bit values into octets, LSB first, after `fill_bits` zero bits (TS 23.038 §6.1.2.1.1)."""
    acc, nbits, out = 0, fill_bits, bytearray()
    for s in septets:
        if s > 0x7F:
            raise ValueError(f"not a septet: {s:#x}")
        acc |= s << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


# ---- decoding (MO messages, tests)


def decode_gsm7(septets: bytes) -> str:
    """Decode unpacked GSM-7 septets (one per octet) to text."""
    out, it = [], iter(septets)
    for s in it:
        if s == ESC:
            code = next(it, None)
            if code is None:
                break
            out.append(_EXT_CHAR.get(code, " "))  # TS 23.038: an unknown extension shows as space
        else:
            out.append(_BASIC_CHAR.get(s & 0x7F, "?"))
    return "".join(out)


def split_udh(short_message: bytes, has_udh: bool) -> tuple[bytes, bytes]:
    """(udh, payload) of a short_message; with has_udh the first octet is the UDH length."""
    if not has_udh or not short_message:
        return b"", short_message
    n = short_message[0] + 1
    return short_message[:n], short_message[n:]


def concat_info(udh: bytes) -> tuple[int, int, int] | None:
    """(reference, total, seq) from a UDH's concatenation element (8- or 16-bit reference), or None."""
    i = 1
    while i + 1 < len(udh):
        iei, ln = udh[i], udh[i + 1]
        data = udh[i + 2 : i + 2 + ln]
        if iei == 0x00 and ln == 3:
            return data[0], data[1], data[2]
        if iei == 0x08 and ln == 4:
            return (data[0] << 8) | data[1], data[2], data[3]
        i += 2 + ln
    return None


def decode_payload(payload: bytes, data_coding: int) -> str:
    """Decode one part's payload (without UDH) by its data_coding."""
    if data_coding & 0x0F == DCS_UCS2 or data_coding == DCS_UCS2:
        return payload.decode("utf-16-be", errors="surrogatepass")
    if data_coding in (0x03,):  # Latin-1
        return payload.decode("latin-1")
    return decode_gsm7(payload)


def reassemble(short_messages: list[bytes], data_coding: int, has_udh: bool = True) -> str:
    """Join the parts of one concatenated message (any order) back into its text."""
    keyed = []
    for sm in short_messages:
        udh, payload = split_udh(sm, has_udh)
        info = concat_info(udh) if udh else None
        keyed.append((info[2] if info else 0, payload))
    keyed.sort(key=lambda kv: kv[0])
    if data_coding == DCS_UCS2:
        # join bytes first: a surrogate pair is never split by us, but other senders may split it
        return b"".join(p for _, p in keyed).decode("utf-16-be", errors="surrogatepass")
    return "".join(decode_payload(p, data_coding) for _, p in keyed)
