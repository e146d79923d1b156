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


@pytest.mark.parametrize(("bad", "message"), [
    # a typo is named, with the key it most likely meant, instead of being ignored silently
    ([{"display_name": "x", "memory": 4096}], "profile_list[0].memory: unknown key 'memory'; did you mean 'memoryMB'?"),
    ([{"display_name": "x"}, {"display_name": "y", "gpus": 1}], "profile_list[1].gpus: unknown key 'gpus'; "
                                                                  "did you mean 'gpu'?"),
    # the fix is in the message
    ([{"display_name": "x", "cpu": "4"}], 'profile_list[0].cpu: must be an integer, got \'4\' (a whole number, '
                                          'e.g. "cpu": 4, not "4")'),
    ([{"display_name": "x", "gpu": True}], "profile_list[0].gpu: must be an integer"),
    ([{"display_name": "x", "memoryMB": -1}], "profile_list[0].memoryMB: must be at least 0, got -1"),
    ([{"display_name": "x", "sku": 100}], "profile_list[0].sku: must be a string, got 100 (a SKU type of the VC"),
    ([{"display_name": ""}], "profile_list[0].display_name: must be a non-empty string"),
    ([{"display_name": "!!!"}], "profile_list[0]: display_name '!!!' makes an empty slug; set one"),
    (["cpu"], "profile_list[0]: must be a mapping, got str"),
    ([{"display_name": "A"}, {"display_name": "B", "slug": "a"}],
     "slug 'a' of profile_list[1] is repeated (profile_list[0] has it too); give each profile its own slug"),
])
def test_bad_profiles_are_refused_with_the_field_and_the_fix(bad, message):
    with pytest.raises(P.ProfileError) as err:
        P.normalize(bad)
    assert message in str(err.value)


def test_every_bad_field_is_named_at_once():
    with pytest.raises(P.ProfileError) as err:
        P.normalize([{"display_name": "x", "gpu": -1, "cpu": "2"}])
    assert "profile_list[0].gpu" in str(err.value) and "profile_list[0].cpu" in str(err.value)


@pytest.mark.parametrize(("options", "message"), [
    ({"profiles": "cpu"}, "user_options.profiles: unknown key 'profiles'; did you mean 'profile'?"),
    ({"profile": 1}, 'user_options.profile: must be a string, got 1 (the slug of a profile offered to you'),
])
def test_bad_user_options_are_refused_before_any_profile_is_picked(options, message):
    with pytest.raises(P.ProfileError) as err:
        P.choose(PROFILES, options)
    assert message in str(err.value)
    with pytest.raises(P.ProfileError, match=r"unknown key|must be a string"):
        P.choose([], options)  # the request is wrong whatever the user may use
