"""CBF headers: finding the text before the binary data, and parsing its CIF items, the Pilatus miniCBF
``# Key value`` lines and the MIME headers of the binary section."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from findspots.errors import ImageError
from findspots.images.fileio import DAMAGED

BINARY_SECTION = b"--CIF-BINARY-FORMAT-SECTION--"
BINARY_START = b"\x0c\x1a\x04\xd5"
HEADER_LIMIT = 4 * 1024 * 1024  # give up looking for the binary section after this many bytes


@dataclass
class CbfHeader:
    """Parsed header of one CBF file."""

    path: str
    cif: dict[str, list[str]] = field(default_factory=dict)  # item name -> values (loops: a column)
    mini: dict[str, str] = field(default_factory=dict)  # Pilatus "# Key value" lines
    mime: dict[str, str] = field(default_factory=dict)  # binary section headers
    timestamp: str | None = None
    byte_offset: bool = False  # binary section uses the x-CBF_BYTE_OFFSET conversion

    def first(self, name: str) -> str | None:
        """First value of a CIF item, or None."""
        return self.cell(name, 0)

    def cell(self, name: str, row: int) -> str | None:
        """Value of a CIF item (or loop column) in a given row, or None when absent."""
        values = self.cif.get(name.lower())
        if values is None or not 0 <= row < len(values):
            return None
        return values[row]

    @property
    def shape(self) -> tuple[int, int]:
        """(slow, fast) array shape from X-Binary-Size-Second/Fastest-Dimension."""
        dims = (
            self.mime.get("x-binary-size-second-dimension", ""),
            self.mime.get("x-binary-size-fastest-dimension", ""),
        )
        if not all(d.isdigit() and d.isascii() and int(d) > 0 for d in dims):
            raise ImageError(f"{self.path}: CBF binary header has no valid image dimensions; {DAMAGED}")
        return int(dims[0]), int(dims[1])


def looks_like_cbf(start: bytes) -> bool:
    """True when the (decompressed) first bytes of a file start like a CBF (or a bare imgCIF data block)."""
    return start.startswith(b"###CBF") or start.lstrip().startswith(b"data_")


def check_is_cbf(path: str, start: bytes, has_binary: bool) -> None:
    """ImageError unless the file starts like a CBF and has a binary data section."""
    if not looks_like_cbf(start):
        raise ImageError(f"{path}: not a CBF file")
    if not has_binary:
        raise ImageError(f"{path}: CBF has no binary data section (truncated or not an image); {DAMAGED}")


# ------------------------------------------------------------------------------------------ parsing

_TOKEN = re.compile(r"'[^']*'(?=\s|$)|\"[^\"]*\"(?=\s|$)|\S+")


def _tokens(text: str) -> list[tuple[str, str]]:
    """CIF tokens as (kind, value), kind in name/value/loop/data; text fields are values."""
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(";"):
            body = [line[1:]]
            i += 1
            while i < len(lines) and not lines[i].startswith(";"):
                body.append(lines[i])
                i += 1
            out.append(("value", "\n".join(body)))
            i += 1
            continue
        for m in _TOKEN.finditer(line):
            tok = m.group(0)
            if tok.startswith("#"):
                break
            if tok[0] in "'\"":
                out.append(("value", tok[1:-1]))
            elif tok.lower() == "loop_":
                out.append(("loop", tok))
            elif tok.lower().startswith("data_"):
                out.append(("data", tok))
            elif tok.startswith("_"):
                out.append(("name", tok.lower()))
            else:
                out.append(("value", tok))
        i += 1
    return out


def parse_cif(text: str) -> dict[str, list[str]]:
    """Items and loop columns of one CIF data block: name (lower case) -> list of values."""
    toks = _tokens(text)
    items: dict[str, list[str]] = {}
    i = 0
    while i < len(toks):
        kind, val = toks[i]
        if kind == "loop":
            names = []
            i += 1
            while i < len(toks) and toks[i][0] == "name":
                names.append(toks[i][1])
                i += 1
            values = []
            while i < len(toks) and toks[i][0] == "value":
                values.append(toks[i][1])
                i += 1
            for k, name in enumerate(names):
                items[name] = values[k :: len(names)]
        elif kind == "name":
            if i + 1 < len(toks) and toks[i + 1][0] == "value":
                items[val] = [toks[i + 1][1]]
                i += 1
            i += 1
        else:
            i += 1
    return items


_MINI_LINE = re.compile(r"^#\s*([A-Za-z_][\w-]*)[:=]?\s*(.*?)\s*$")
_TIMESTAMP = re.compile(r"^#\s*(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)")


def _parse_mini(contents: str) -> tuple[dict[str, str], str | None]:
    mini: dict[str, str] = {}
    stamp = None
    for line in contents.splitlines():
        line = line.strip()
        if m := _TIMESTAMP.match(line):
            stamp = m.group(1)
            continue
        if m := re.match(r"^#\s*(\w+)\s+sensor,\s*thickness\s+(\S+)\s*m", line):
            mini["Sensor_material"] = m.group(1)
            mini["Sensor_thickness"] = m.group(2)
            continue
        if m := _MINI_LINE.match(line):
            mini.setdefault(m.group(1), m.group(2))
    return mini, stamp


def _parse_mime(text: str) -> dict[str, str]:
    mime: dict[str, str] = {}
    for line in text.splitlines():
        if m := re.match(r"^([A-Za-z][\w-]*):\s*(.*?)\s*$", line):
            mime[m.group(1).lower()] = m.group(2).strip('"')
    return mime


def parse_header(path: str, raw_header: bytes) -> CbfHeader:
    """Split header bytes into CIF items, the Pilatus mini header and the MIME binary headers."""
    text = raw_header.decode("latin-1")
    cut = text.find(BINARY_SECTION.decode())
    cif_text, mime_text = (text, "") if cut < 0 else (text[:cut], text[cut:])
    cif = parse_cif(cif_text)
    contents = cif.get("_array_data.header_contents", [""])[0]
    mini, stamp = _parse_mini(contents)
    byte_offset = "x-cbf_byte_offset" in mime_text.lower()
    mime = _parse_mime(mime_text)
    return CbfHeader(path=path, cif=cif, mini=mini, mime=mime, timestamp=stamp, byte_offset=byte_offset)
