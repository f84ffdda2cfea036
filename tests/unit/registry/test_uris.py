import pytest

from mlcycle.errors import InvalidInputError, PermissionDeniedError
from mlcycle.registry.uris import parse_model_ref, qualified_name, split_name


@pytest.mark.parametrize(("ref", "uri", "name", "alias", "version"), [
    ("models:/wine@champion", "models:/wine@champion", "wine", "champion", None),
    ("wine@champion", "models:/wine@champion", "wine", "champion", None),
    ("models:/wine/5", "models:/wine/5", "wine", None, "5"),
    ("wine/5", "models:/wine/5", "wine", None, "5"),
])
def test_registry_refs_and_shorthand(ref, uri, name, alias, version):
    parsed = parse_model_ref(ref)
    assert (parsed.uri, parsed.name, parsed.alias, parsed.version) == (uri, name, alias, version)
    assert parsed.is_registry and parsed.base_name == "wine"


def test_other_uris_pass_through():
    assert parse_model_ref("runs:/abc/model").uri == "runs:/abc/model"
    assert not parse_model_ref("s3://bucket/model").is_registry


def test_team_prefix_is_added_and_enforced():
    ref = parse_model_ref("wine@champion", team="team-a")
    assert ref.name == "team-a.wine" and ref.team == "team-a" and ref.base_name == "wine"
    assert parse_model_ref("models:/team-a.wine/2", team="team-a").version == "2"
    with pytest.raises(PermissionDeniedError):
        parse_model_ref("team-b.wine@champion", team="team-a")
    assert split_name("team-a.wine") == ("team-a", "wine") and split_name("wine") == ("", "wine")
    assert qualified_name("wine", "") == "wine"


@pytest.mark.parametrize("ref", ["", "wine", "models:/wine/latest", "wine@", "bad name@champion"])
def test_malformed_refs_are_client_errors(ref):
    with pytest.raises(InvalidInputError) as e:
        parse_model_ref(ref)
    assert e.value.http_status == 400
