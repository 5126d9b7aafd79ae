"""`make models` must never ship a bundle whose Malicious suspect its own check does not claim."""

import pytest

from xmark_core.demo_build import DemoConfig, build_demo
from xmark_core.errors import XMarkError


def test_failing_recipe_writes_nothing(tmp_path):
    # One epoch everywhere: far too little for the mark to be learned, so the check must fail.
    cfg = DemoConfig(n=80, image_size=64, classifier_epochs=1, generator={"epochs": 1, "base": 8},
                     query_n=40, m=10)
    out = tmp_path / "models"
    with pytest.raises(XMarkError, match="failed its own check"):
        build_demo(out, cfg, log=lambda s: None)
    assert not out.exists()


def test_demo_verifies_with_the_library_default_query_gain_and_choice():
    from xmark_core.verify.protocol import VerifyConfig

    assert DemoConfig().query_gain == VerifyConfig().query_gain == 2.0
    assert DemoConfig().queries == VerifyConfig().queries == "boundary"
    assert DemoConfig().specificity == VerifyConfig().specificity == 25.0


def test_model_card_sections_are_replaced_in_place_or_appended(tmp_path):
    from xmark_core.demo_build import replace_card_section

    card = tmp_path / "MODEL_CARD.md"
    card.write_text("# Demo\n\nintro\n\n## Proxy\n\nold numbers\n\n## StealthMark\n\nseg\n")
    replace_card_section(card, "## Proxy", "## Proxy\n\nnew numbers\n")
    assert card.read_text() == "# Demo\n\nintro\n\n## Proxy\n\nnew numbers\n\n## StealthMark\n\nseg\n"
    replace_card_section(card, "## StealthMark", "## StealthMark\n\nseg 2\n")
    assert card.read_text().endswith("## Proxy\n\nnew numbers\n\n## StealthMark\n\nseg 2\n")
    replace_card_section(card, "## Other", "## Other\n\nx")
    assert card.read_text().endswith("seg 2\n\n## Other\n\nx\n")
    assert card.read_text().count("## Proxy") == 1


def test_proxy_is_not_written_for_a_release_other_than_the_owner_records(tmp_path):
    """``xmark models build --part proxy`` re-embeds the shipped release; if that does not give
    the images the owner record lists (here: a smaller phantom), nothing is written."""
    import shutil

    from xmark_core.app_support.demo import PROXY_FILE, default_models_dir
    from xmark_core.demo_build import build_proxy

    src = default_models_dir()
    if not (src / "generator.pt").is_file():
        pytest.skip("demo models not built")
    files = ["MODEL_CARD.md", "generator.pt", "owner_record.json", "surrogate.pt", "suspect_clean.pt"]
    for name in files:
        shutil.copy(src / name, tmp_path / name)
    with pytest.raises(XMarkError, match="bundle is incomplete"):  # no Malicious suspect to verify
        build_proxy(tmp_path, DemoConfig(n=60, image_size=64), log=lambda s: None)
    shutil.copy(src / "suspect_malicious.pt", tmp_path / "suspect_malicious.pt")
    files = sorted([*files, "suspect_malicious.pt"])
    card = (tmp_path / "MODEL_CARD.md").read_text()
    with pytest.raises(XMarkError, match="marks other images than the owner record lists"):
        build_proxy(tmp_path, DemoConfig(n=60, image_size=64), log=lambda s: None)
    assert not (tmp_path / PROXY_FILE).exists() and (tmp_path / "MODEL_CARD.md").read_text() == card
    assert sorted(p.name for p in tmp_path.iterdir()) == files
