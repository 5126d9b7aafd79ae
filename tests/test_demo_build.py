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
