import pytest

from pai_spawner import profiles as P

PROFILES = P.normalize([
    {"display_name": "CPU", "vc": "default", "default": True},
    {"display_name": "V100 x1", "vc": "research", "sku": "V100", "gpu": 1, "cpu": 4, "memoryMB": 16384},
    {"display_name": "K80 x1", "slug": "k80", "vc": "default", "sku": "K80", "gpu": 1},
])


def test_normalize_fills_slugs_and_defaults():
    assert [p["slug"] for p in PROFILES] == ["cpu", "v100-x1", "k80"]
    assert PROFILES[0] | {} == {**PROFILES[0], "gpu": 0, "cpu": 1, "memoryMB": 2048, "sku": None}


@pytest.mark.parametrize(("bad", "field"), [
    ({"vc": "default"}, "display_name"),
    ({"display_name": "x", "gpu": -1}, "gpu"),
    ({"display_name": "x", "cpu": "2"}, "cpu"),
    ({"display_name": "x", "vc": ""}, "vc"),
])
def test_normalize_names_the_bad_field(bad, field):
    with pytest.raises(P.ProfileError, match=field):
        P.normalize([bad])


def test_repeated_slugs_are_refused():
    with pytest.raises(P.ProfileError, match="repeated"):
        P.normalize([{"display_name": "A"}, {"display_name": "a"}])


def test_users_see_only_profiles_of_their_vcs_and_offered_skus():
    assert [p["slug"] for p in P.allowed(PROFILES, {"default"})] == ["cpu", "k80"]
    assert [p["slug"] for p in P.allowed(PROFILES, {"default", "research"})] == ["cpu", "v100-x1", "k80"]
    # VC default offers no K80 (known from GET /cluster/sku-types); research's SKUs are unknown: kept
    only = P.allowed(PROFILES, {"default", "research"}, {"default": {"cpu", "V100"}, "research": None})
    assert [p["slug"] for p in only] == ["cpu", "v100-x1"]


def test_choose_by_slug_default_or_first():
    mine = P.allowed(PROFILES, {"default"})
    assert P.choose(mine, {"profile": "k80"})["slug"] == "k80"
    assert P.choose(mine, {})["slug"] == "cpu"
    assert P.choose(mine[1:], {})["slug"] == "k80"
    with pytest.raises(P.ProfileError, match="not available to you"):
        P.choose(mine, {"profile": "v100-x1"})
    with pytest.raises(P.ProfileError, match="no profile"):
        P.choose([], {})


def test_form_lists_profiles_escaped_with_the_default_checked():
    form = P.render_form(P.normalize([{"display_name": "<b>x</b>", "default": True}, {"display_name": "y"}]))
    assert "&lt;b&gt;x&lt;/b&gt;" in form and "<b>x</b>" not in form
    assert 'value="b-x-b" checked' in form and 'value="y">' in form
    assert "No profile is available" in P.render_form([])
