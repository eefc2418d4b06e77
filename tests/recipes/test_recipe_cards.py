"""Recipe cards (recipes/cards/*.yaml): every real-data recipe has one, every entry holds on the recipe as it
resolves (as --print_config does), every deviation is named in the recipe's header."""

from __future__ import annotations

from pathlib import Path

import pytest

from domadapt.recipes import list_recipes, resolve_recipe, uses_real_data
from domadapt.recipes.listing import recipe_files
from domadapt.recipes.cards import TOPICS, check_card, header, load_cards, same, validate_card

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
CARDS = load_cards(RECIPES / "cards")
REAL = [p.relative_to(RECIPES).as_posix() for p in list_recipes(RECIPES) if uses_real_data(p)]


def test_every_real_data_recipe_has_a_card_and_every_card_a_recipe():
    assert REAL, "the real-data recipes are found by listing"
    assert sorted(set(REAL) - set(CARDS)) == []
    assert sorted(set(CARDS) - set(REAL)) == []


@pytest.mark.parametrize("recipe", REAL)
def test_recipe_resolves_to_its_card(recipe):
    mismatches = check_card(recipe, CARDS[recipe], resolve_recipe(RECIPES / recipe))
    assert not mismatches, "\n".join(map(str, mismatches))


def _headers(recipe: str) -> str:
    return "\n".join(header(p) for p in recipe_files(RECIPES / recipe)).lower()


@pytest.mark.parametrize("recipe", REAL)
def test_every_deviation_is_named_in_the_recipe_header(recipe):
    text = " ".join(_headers(recipe).split())
    unnamed = [e["name"] for e in CARDS[recipe]["entries"] if "deviation" in e and e["name"].lower() not in text]
    assert not unnamed, f"{recipe}: deviations not named in its header: {unnamed}"


def test_a_card_missing_a_topic_or_a_deviation_reason_is_refused():
    entries = [{"topic": t, "key": "trainer.devices", "value": 1, "source": "x"} for t in TOPICS]
    validate_card({"reference": "r", "entries": entries}, "card")
    with pytest.raises(ValueError, match="no entry for devices"):
        validate_card({"reference": "r", "entries": [e for e in entries if e["topic"] != "devices"]}, "card")
    validate_card({"reference": "r", "entries": entries[1:], "not_applicable": {TOPICS[0]: "why"}}, "card")
    bad = [*entries, {"topic": "devices", "key": "k", "value": 1, "source": "s", "deviation": "why"}]
    with pytest.raises(ValueError, match="entries\\[16\\]: a deviation needs"):
        validate_card({"reference": "r", "entries": bad}, "card")
    with pytest.raises(ValueError, match="topic 'lr'"):
        validate_card({"reference": "r", "entries": [{"topic": "lr", "key": "k", "value": 1, "source": "s"}]}, "c")


def test_check_card_reports_the_stage_key_and_both_values():
    card = {"entries": [{"topic": "devices", "key": "trainer.devices", "value": 1, "source": "s"},
                        {"topic": "thresholds", "key": "options.strategy.cap", "value": 0.9, "source": "s",
                         "stages": ["pl"]}]}
    resolved = {"m0": {"trainer": {"devices": "auto"}}, "pl": {"options": {"strategy": {"cap": 0.9}}}}
    (m,) = check_card("r.yaml", card, resolved)
    assert (m.stage, m.key, m.expected, m.found) == ("m0", "trainer.devices", 1, "auto")
    resolved["m0"]["trainer"]["devices"] = 1
    assert check_card("r.yaml", card, resolved) == []
    resolved["pl"]["options"]["strategy"]["cap"] = 0.95
    assert [m.stage for m in check_card("r.yaml", card, resolved)] == ["pl"]


def test_card_values_compare_numbers_lists_and_booleans_strictly():
    assert same(2.5e-4, 0.00025) and same([720, 1280], [720, 1280]) and same({"a": 1}, {"a": 1.0})
    assert not same(2.5e-4, 2.6e-4) and not same([720, 1280], [1280, 720]) and not same(True, 1)
    assert not same("imagenet", None) and not same([1, 2], [1, 2, 3])
