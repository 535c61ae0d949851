"""The one size helper: rounding to a generator's size multiple and the sizes exports are verified on."""

from __future__ import annotations

import pytest

from cg_export.sizes import round_down, round_up, verification_sizes


@pytest.mark.parametrize("value, multiple, up, down", [(256, 4, 256, 256), (257, 4, 260, 256), (100, 96, 192, 96),
                                                       (3, 4, 4, 4), (1000, 32, 1024, 992)])
def test_rounding_to_a_multiple(value, multiple, up, down):
    assert (round_up(value, multiple), round_down(value, multiple)) == (up, down)


def test_verification_sizes_default_and_inside_a_profile():
    assert verification_sizes(4) == [(256, 256), (256, 384)]
    assert verification_sizes(96) == [(288, 288), (288, 480)]
    assert verification_sizes(4, around=(64, 64), width_range=(32, 128)) == [(64, 64), (64, 96)]
    assert verification_sizes(4, around=(64, 64), width_range=(32, 80)) == [(64, 64), (64, 80)]  # clipped to max
    assert verification_sizes(4, around=(64, 64), width_range=(64, 64)) == [(64, 64)]  # a static profile
