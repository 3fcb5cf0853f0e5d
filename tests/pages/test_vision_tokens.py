"""The vision-tokens page: samples, uploads (good, broken, huge), packing and the encoder views."""

from __future__ import annotations

import io

from PIL import Image

from tests.core.models.test_vision_tokens import _png_header
from tests.pages.apptest import assert_clean, errors, metric, open_page


def _png(width: int, height: int, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30) if mode == "RGB" else (200, 30, 30, 128)).save(buf, "PNG")
    return buf.getvalue()


def test_default_sample_counts():
    """china.jpg 427x640 -> Kimi-VL 32x46 patches -> 368 tokens; the fixed encoder 576."""
    at = open_page("vision_tokens.py")
    assert_clean(at)
    assert metric(at, "Patch grid (14 px)") == "32×46"
    assert metric(at, "Visual tokens (Kimi-VL)") == "368"
    assert metric(at, "Fixed 336×336 encoder") == "576"
    assert metric(at, "Packed sequence").startswith("1,736")      # 1472 + 24 + 240
    at.selectbox(key="vt_sample").select("tall text page (generated)").run()
    assert_clean(at)
    assert metric(at, "Visual tokens (Kimi-VL)") == "675"
    at.slider(key="vt_qrow").set_value(0).run()
    at.multiselect(key="vt_pack").set_value([]).run()
    assert_clean(at)
    assert metric(at, "As a padded batch") == metric(at, "Packed sequence")


def test_uploads_good_and_bad():
    at = open_page("vision_tokens.py")
    at.radio(key="vt_kind").set_value("Upload").run()
    assert_clean(at)
    at.file_uploader(key="vt_upload").set_value(("icon.png", _png(30, 20, "RGBA"), "image/png")).run()
    assert_clean(at)
    assert metric(at, "Image") == "30×20 px" and metric(at, "Visual tokens (Kimi-VL)") == "2"
    at.file_uploader(key="vt_upload").set_value(("notes.png", b"<script>x</script> not a png",
                                                  "image/png")).run()
    assert_clean(at)
    assert any("not an image" in e for e in errors(at))
    at.file_uploader(key="vt_upload").set_value(("long.png", _png(8000, 20), "image/png")).run()
    assert_clean(at)
    assert any("scaled to 4096×10" in w.value for w in at.warning)       # capped, with a notice
    assert metric(at, "Image") == "4096×10 px"
    bomb = _png_header(20_000, 20_000)
    at.file_uploader(key="vt_upload").set_value(("bomb.png", bomb, "image/png")).run()
    assert_clean(at)
    assert any("megapixels" in e for e in errors(at))


def test_in_chinese_samples_packing_and_uploads():
    """?lang=zh: samples by their Chinese names, packing, the encoder and upload messages in Chinese;
    nothing the page asks the catalog for is missing (an upload's file name is shown as it is)."""
    from app import i18n

    before = set(i18n.MISSING)
    at = open_page("vision_tokens.py", lang="zh")
    assert_clean(at)
    assert metric(at, "视觉词元（Kimi-VL）") == "368"
    at.selectbox(key="vt_sample").select("tall text page (generated)").run()
    assert_clean(at)
    assert metric(at, "视觉词元（Kimi-VL）") == "675"
    packed = next(df.value for df in at.dataframe if "网格" in df.value.columns)
    assert "长文本页（生成）" in set(packed["图像"])
    at.radio(key="vt_aspect").set_value("1:3 (page)").run()
    at.radio(key="vt_kind").set_value("Upload").run()
    assert_clean(at)
    at.file_uploader(key="vt_upload").set_value(("图标.png", _png(30, 20, "RGBA"), "image/png")).run()
    assert_clean(at)
    assert metric(at, "图像") == "30×20 px"
    at.file_uploader(key="vt_upload").set_value(("long.png", _png(8000, 20), "image/png")).run()
    assert any("已缩放到 4096×10 px" in w.value for w in at.warning)
    at.file_uploader(key="vt_upload").set_value(("notes.png", b"not a png", "image/png")).run()
    assert_clean(at)
    assert errors(at) and all(any("\u4e00" <= c <= "\u9fff" for c in e) for e in errors(at))
    assert sorted(m for lang, m in i18n.MISSING - before if lang == "zh") == []
