"""Small scans for the ocr tests, drawn with PIL in matplotlib's DejaVu Sans (no downloads)."""

from __future__ import annotations

import json
import struct
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import matplotlib
from PIL import Image, ImageDraw, ImageFont


@cache
def _font() -> Any:
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts/ttf/DejaVuSans.ttf"),
                              28)


def page(text: str) -> Image.Image:
    """A small white page with ``text`` in black lines: Tesseract reads it exactly."""
    lines = text.split("\n")
    image = Image.new("L", (760, 60 + 45 * len(lines)), 255)
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((30, 30 + 45 * i), line, fill=0, font=_font())
    return image


def save_tiff(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = [page(t) for t in texts]
    first.save(path, save_all=True, append_images=rest)
    return path


def text_layer_pdf(path: Path, text: str) -> Path:
    """A one-page PDF with a real text layer (matplotlib's PDF backend writes text as text)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 2))
    figure.text(0.05, 0.5, text, fontsize=14)
    figure.savefig(path, format="pdf")
    return path


def raw_pdf(pages: int = 1, encrypted: bool = False) -> bytes:
    """A hand-made PDF: with no pages, or encrypted with a password nobody knows."""
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode()]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"] * pages
    trailer = ""
    if encrypted:
        objects.append(b"<< /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <"
                       + b"22" * 32 + b"> /P -4 >>")
        trailer = (f" /Encrypt {len(objects)} 0 R /ID [<00112233445566778899aabbccddeeff> "
                   "<00112233445566778899aabbccddeeff>]")
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{trailer} >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return out


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A PNG whose header claims width x height pixels (10 G): decoding it would eat memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def textract_json(pages: list[list[str]]) -> str:
    blocks: list[dict[str, Any]] = [{"BlockType": "PAGE", "Page": n}
                                    for n in range(1, len(pages) + 1)]
    for n, lines in enumerate(pages, start=1):
        blocks += [{"BlockType": "LINE", "Page": n, "Text": line} for line in lines]
        blocks += [{"BlockType": "WORD", "Page": n, "Text": w} for line in lines
                   for w in line.split()]
    return json.dumps({"DocumentMetadata": {"Pages": len(pages)}, "Blocks": blocks})


def iit_cdip_xml(pages: list[str]) -> str:
    body = "<pg>".join(pages).replace("&", "&amp;")
    return f'<?xml version="1.0"?>\n<record><tid>abc00a00</tid><ot>{body}</ot></record>\n'
