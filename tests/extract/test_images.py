"""Opening images from every shape users pass, with size caps."""

from __future__ import annotations

import base64
import http.server
import io
import ipaddress
import threading
from collections.abc import Iterator
from pathlib import Path

import docgen
import numpy as np
import pytest
from PIL import Image

from mrag.images import ImageError, load_image
from mrag.model import JinaClipModel


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def red_square() -> Image.Image:
    return Image.new("RGB", (40, 30), (255, 0, 0))


def loopback_only(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Admit this machine only: the test server listens on the loopback address."""
    return address.is_loopback


@pytest.fixture
def http_root(tmp_path: Path, red_square: Image.Image) -> Iterator[str]:
    (tmp_path / "red.png").write_bytes(_png_bytes(red_square))
    (tmp_path / "big.png").write_bytes(docgen.png_bomb(50_000, 50_000))

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_every_input_shape_gives_the_same_rgb_image(
    tmp_path: Path, red_square: Image.Image, http_root: str
) -> None:
    data = _png_bytes(red_square)
    path = tmp_path / "red.png"
    path.write_bytes(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    for source in (str(path), path, data, bytearray(data), red_square, uri, f"{http_root}/red.png"):
        image = load_image(source, address_allowed=loopback_only)
        assert image.mode == "RGB" and image.size == (40, 30)
        assert image.getpixel((5, 5)) == (255, 0, 0)


def test_transparency_is_flattened_onto_white() -> None:
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image.putpixel((0, 0), (0, 0, 255, 255))
    rgb = load_image(_png_bytes(image))
    assert rgb.getpixel((5, 5)) == (255, 255, 255)
    assert rgb.getpixel((0, 0)) == (0, 0, 255)


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20), (0, 255, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    assert load_image(buffer.getvalue()).size == (20, 40)


def test_grayscale_16_bit_is_scaled_not_clipped() -> None:
    array = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    image = Image.fromarray(array)
    rgb = load_image(_png_bytes(image))
    values = np.asarray(rgb)[..., 0]
    assert values.min() == 0 and values.max() == 255 and len(np.unique(values)) > 100


def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(docgen.png_bomb(100_000, 100_000))
    with pytest.raises(ImageError, match=r"bomb\.png: image is .*over the limit"):
        load_image(path)
    with pytest.raises(ImageError, match="over the limit"):
        load_image(_png_bytes(Image.new("RGB", (200, 200))), max_pixels=100 * 100)


def test_unreadable_inputs_name_the_source(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"missing\.png: cannot read"):
        load_image(tmp_path / "missing.png")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError, match=r"broken\.jpg: cannot decode"):
        load_image(broken)
    with pytest.raises(ImageError, match="not valid base64"):
        load_image("data:image/png;base64,@@@")
    with pytest.raises(TypeError):
        load_image(42)  # type: ignore[arg-type]


def test_urls_are_checked(http_root: str) -> None:
    with pytest.raises(ImageError, match="over the limit"):
        load_image(f"{http_root}/big.png", address_allowed=loopback_only)
    with pytest.raises(ImageError, match="HTTP 404"):
        load_image(f"{http_root}/absent.png", address_allowed=loopback_only)
    with pytest.raises(ImageError, match="not allowed"):
        load_image(f"{http_root}/red.png", allow_urls=False)
    with pytest.raises(ImageError, match="byte limit"):
        load_image(f"{http_root}/red.png", max_url_bytes=10, address_allowed=loopback_only)


def test_urls_to_private_networks_are_refused(http_root: str) -> None:
    # The library fetches through the same guard as the server: the default admits public
    # addresses only, so a URL cannot reach this machine's own services.
    with pytest.raises(ImageError, match="not a public address"):
        load_image(f"{http_root}/red.png")
    with pytest.raises(ImageError, match="not a public address"):
        load_image("http://169.254.169.254/latest/meta-data")


def test_encode_image_accepts_all_shapes_alike(
    tiny_model: JinaClipModel, tmp_path: Path, red_square: Image.Image
) -> None:
    data = _png_bytes(red_square)
    path = tmp_path / "red.png"
    path.write_bytes(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    vectors = tiny_model.encode_image([str(path), path, data, red_square, uri])
    np.testing.assert_allclose(vectors, np.repeat(vectors[:1], 5, axis=0), atol=1e-6)
