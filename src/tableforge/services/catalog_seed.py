"""The official systems a fresh server starts with: real templates (sheets, dice presets, initiative,
grid, token bars, conditions; see domain/system_template.py) so a GM can open a room and play at
once. Inserted once, and refreshed when this code changes them (they have no owner to edit them);
tests/unit/test_system_templates.py checks each against what the play tools accept."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tableforge.db.schema import game_systems
from tableforge.services import replies, systems
from tableforge.services.runtime import Runtime

_ABILITIES = ["strength", "dexterity", "constitution", "intelligence", "wisdom", "charisma"]

OFFICIAL_SYSTEMS: list[dict[str, Any]] = [
    {
        "name": "Dungeon Delve (d20 fantasy)",
        "description": "Classic heroic fantasy: six abilities, armour class, hit points and a d20 for every test.",
        "category": "fantasy", "complexity": "intermediate",
        "template": {
            "sheet": {
                "fields": [
                    {"key": "name", "label": "Name", "type": "text"},
                    {"key": "class", "label": "Class", "type": "select",
                     "options": ["Fighter", "Wizard", "Rogue", "Cleric", "Ranger", "Bard"]},
                    {"key": "level", "label": "Level", "type": "number", "min": 1, "max": 20, "default": 1},
                    *[{"key": a, "label": a.title(), "type": "number", "min": 1, "max": 30, "default": 10}
                      for a in _ABILITIES],
                    {"key": "armor_class", "label": "Armour class", "type": "number", "default": 10},
                    {"key": "hit_points", "label": "Hit points", "type": "counter", "default": 10},
                    {"key": "inventory", "label": "Inventory", "type": "textarea"},
                ],
                "derived": {"modifier": "floor((score - 10) / 2)", "proficiency": "2 + floor((level - 1) / 4)"},
            },
            "dice_presets": [
                {"label": "Ability check", "notation": "1d20"},
                {"label": "Advantage", "notation": "2d20kh1"},
                {"label": "Disadvantage", "notation": "2d20kl1"},
                {"label": "Roll stats", "notation": "6#4d6kh3"},
                {"label": "Longsword", "notation": "1d8"},
                {"label": "Sneak attack", "notation": "1d6+3d6"},
                {"label": "Fireball", "notation": "8d6"},
            ],
            "initiative": {"formula": "1d20", "order": "descending"},
            "grid": {"type": "square", "units_per_cell": 5, "unit": "ft", "diagonal": "5-5-5"},
            "token_defaults": {"size": 1, "scale": 1.0, "bars": [
                {"key": "hp", "label": "HP", "value": 10, "max": 10, "color": "#c0392b", "visibility": "owners",
                 "sheet_field": "hit_points"},
                {"key": "ac", "label": "AC", "value": 10, "color": "#7f8c8d", "visibility": "owners",
                 "sheet_field": "armor_class"},
            ]},
            "conditions": ["blinded", "charmed", "deafened", "exhausted", "frightened", "grappled",
                           "incapacitated", "invisible", "paralyzed", "petrified", "poisoned", "prone",
                           "restrained", "stunned", "unconscious", "concentrating"],
        },
    },
    {
        "name": "Neon Runners (d6 dice pool)",
        "description": "Cyberpunk heists: roll a pool of d6, every 5 or 6 is a hit; more hits, better outcome.",
        "category": "sci-fi", "complexity": "advanced",
        "template": {
            "sheet": {
                "fields": [
                    {"key": "handle", "label": "Street name", "type": "text"},
                    *[{"key": k, "label": k.title(), "type": "number", "min": 1, "max": 6, "default": 2}
                      for k in ("body", "agility", "reaction", "logic", "intuition", "charisma")],
                    {"key": "edge", "label": "Edge", "type": "counter", "default": 2},
                    {"key": "stun", "label": "Stun track", "type": "track", "boxes": 10},
                    {"key": "physical", "label": "Physical track", "type": "track", "boxes": 10},
                    {"key": "cyberware", "label": "Cyberware", "type": "textarea"},
                ],
                "rules": {"hit_on": [5, 6], "glitch": "more than half the dice show 1"},
            },
            "dice_presets": [
                {"label": "Small pool", "notation": "6d6>=5"},
                {"label": "Average pool", "notation": "10d6>=5"},
                {"label": "Big pool", "notation": "14d6>=5"},
                {"label": "Edge: sixes explode", "notation": "8d6!cs>=5"},
                {"label": "Initiative", "notation": "1d6+8"},
            ],
            "initiative": {"formula": "1d6+8", "order": "descending"},
            "grid": {"type": "square", "units_per_cell": 1, "unit": "m", "diagonal": "euclidean"},
            "token_defaults": {"size": 1, "scale": 1.0, "bars": [
                {"key": "physical", "label": "Physical", "value": 10, "max": 10, "color": "#c0392b",
                 "visibility": "owners", "sheet_field": "physical"},
                {"key": "stun", "label": "Stun", "value": 10, "max": 10, "color": "#2980b9", "visibility": "owners",
                 "sheet_field": "stun"},
                {"key": "edge", "label": "Edge", "value": 2, "max": 7, "color": "#f1c40f", "visibility": "owners",
                 "sheet_field": "edge"},
            ]},
            "conditions": ["prone", "stunned", "blinded", "deafened", "bleeding", "burning", "hacked",
                           "jacked in", "suppressed", "unconscious"],
        },
    },
    {
        "name": "Dread Archives (percentile horror)",
        "description": "Investigators against the unknown: roll d100 under a skill; sanity slips away.",
        "category": "horror", "complexity": "beginner",
        "template": {
            "sheet": {
                "fields": [
                    {"key": "name", "label": "Investigator", "type": "text"},
                    {"key": "occupation", "label": "Occupation", "type": "text"},
                    *[{"key": k, "label": k.title(), "type": "number", "min": 1, "max": 99, "default": 50}
                      for k in ("strength", "dexterity", "power", "education", "appearance")],
                    {"key": "hit_points", "label": "Hit points", "type": "counter", "default": 10},
                    {"key": "sanity", "label": "Sanity", "type": "counter", "default": 50},
                    {"key": "luck", "label": "Luck", "type": "counter", "default": 50},
                    {"key": "skills", "label": "Skills (percent)", "type": "table",
                     "columns": ["skill", "value"],
                     "default": [["Library use", 40], ["Spot hidden", 25], ["Occult", 5]]},
                ],
                "rules": {"success": "roll <= skill", "hard": "roll <= skill / 2", "extreme": "roll <= skill / 5"},
            },
            "dice_presets": [
                {"label": "Skill roll", "notation": "1d100"},
                {"label": "Sanity loss (minor)", "notation": "1d4"},
                {"label": "Sanity loss (major)", "notation": "1d10"},
                {"label": "Bonus die", "notation": "2d100kl1"},
                {"label": "Penalty die", "notation": "2d100kh1"},
            ],
            "initiative": {"formula": "1d100", "order": "descending"},
            "grid": {"type": "none", "units_per_cell": 1, "unit": "m"},
            "token_defaults": {"size": 1, "scale": 1.0, "bars": [
                {"key": "hp", "label": "HP", "value": 10, "max": 10, "color": "#c0392b", "visibility": "owners",
                 "sheet_field": "hit_points"},
                {"key": "sanity", "label": "Sanity", "value": 50, "max": 99, "color": "#8e44ad", "visibility": "owners",
                 "sheet_field": "sanity"},
            ]},
            "conditions": ["shaken", "major wound", "dying", "unconscious", "temporary insanity",
                           "indefinite insanity", "prone"],
        },
    },
    {
        "name": "Moves & Misses (2d6 narrative)",
        "description": "Fiction first: roll 2d6 plus a stat; 10+ you do it, 7-9 at a cost, 6- the GM makes a move.",
        "category": "narrative", "complexity": "beginner",
        "template": {
            "sheet": {
                "fields": [
                    {"key": "name", "label": "Name", "type": "text"},
                    {"key": "playbook", "label": "Playbook", "type": "text"},
                    *[{"key": k, "label": k.title(), "type": "number", "min": -2, "max": 3, "default": 0}
                      for k in ("cool", "hard", "hot", "sharp", "weird")],
                    {"key": "harm", "label": "Harm", "type": "clock", "segments": 6},
                    {"key": "experience", "label": "Experience", "type": "track", "boxes": 5},
                ],
                "outcomes": {"10+": "full success", "7-9": "success with a cost", "6-": "GM move"},
            },
            "dice_presets": [
                {"label": "Move +0", "notation": "2d6"},
                {"label": "Move +1", "notation": "2d6+1"},
                {"label": "Move +2", "notation": "2d6+2"},
                {"label": "Move +3", "notation": "2d6+3"},
                {"label": "Move -1", "notation": "2d6-1"},
            ],
            "initiative": {"formula": "2d6", "order": "descending"},
            "grid": {"type": "none", "units_per_cell": 1, "unit": "m"},
            "token_defaults": {"size": 1, "scale": 1.0, "bars": [
                {"key": "harm", "label": "Harm", "value": 0, "max": 6, "color": "#c0392b", "visibility": "everyone",
                 "sheet_field": "harm"},
            ]},
            "conditions": ["afraid", "angry", "guilty", "hopeless", "insecure"],
        },
    },
    {
        "name": "Starlane Skirmish (d10 tactics)",
        "description": "Squad tactics in space: roll d10s against a target number, hex grid, cover and overwatch.",
        "category": "sci-fi", "complexity": "intermediate",
        "template": {
            "sheet": {
                "fields": [
                    {"key": "unit", "label": "Unit", "type": "text"},
                    {"key": "move", "label": "Move (hexes)", "type": "number", "default": 5},
                    {"key": "aim", "label": "Aim target", "type": "number", "min": 2, "max": 10, "default": 6},
                    {"key": "armor", "label": "Armour", "type": "number", "default": 1},
                    {"key": "wounds", "label": "Wounds", "type": "counter", "default": 3},
                ],
                "rules": {"hit": "each d10 >= aim target", "cover": "+1 aim target"},
            },
            "dice_presets": [
                {"label": "Burst fire (aim 6)", "notation": "3d10>=6"},
                {"label": "Burst fire in cover (aim 7)", "notation": "3d10>=7"},
                {"label": "Sniper shot (aim 4)", "notation": "1d10>=4"},
                {"label": "Suppressive fire (aim 8)", "notation": "6d10>=8"},
                {"label": "Grenade", "notation": "2d10"},
            ],
            "initiative": {"formula": "1d10", "order": "descending"},
            "grid": {"type": "hex_flat", "units_per_cell": 2, "unit": "m"},
            "token_defaults": {"size": 1, "scale": 1.0, "bars": [
                {"key": "wounds", "label": "Wounds", "value": 3, "max": 3, "color": "#c0392b", "visibility": "everyone",
                 "sheet_field": "wounds"},
                {"key": "suppression", "label": "Suppression", "value": 0, "max": 3, "color": "#e67e22",
                 "visibility": "everyone"},
            ]},
            "conditions": ["in cover", "overwatch", "suppressed", "pinned", "stunned", "down"],
        },
    },
]


_REFRESHED = ("description", "category", "complexity", "template")


async def seed(rt: Runtime) -> int:
    """Insert the official systems that are missing (by name), and bring the ones already stored up
    to date with this code (their templates follow what the play tools can do). Official systems
    have no owner, so nobody can have edited them: refreshing loses no one's work. Returns how
    many systems were added or refreshed."""
    refreshed: list[str] = []
    async with rt.db.write() as conn:
        await rt.db.serialize(conn, 7270001)  # N instances may start at once: one seeds, the others see its rows
        stored = {row.name: row for row in (await conn.execute(
            sa.select(game_systems.c.id, game_systems.c.name, *[game_systems.c[k] for k in _REFRESHED])
            .where(game_systems.c.is_official.is_(True)))).all()}
        now = replies.now()
        rows = [
            {"id": replies.new_id(), "owner_id": None, "is_public": True, "is_official": True, "download_count": 0,
             "rating_avg": 0.0, "rating_count": 0, "created_at": now, "updated_at": now, **system}
            for system in OFFICIAL_SYSTEMS if system["name"] not in stored
        ]
        if rows:
            await conn.execute(sa.insert(game_systems), rows)
        for system in OFFICIAL_SYSTEMS:
            row = stored.get(system["name"])
            if row is None or all(getattr(row, k) == system[k] for k in _REFRESHED):
                continue
            await conn.execute(sa.update(game_systems).where(game_systems.c.id == row.id)
                               .values(**{k: system[k] for k in _REFRESHED}, updated_at=now))
            refreshed.append(str(row.id))
    for system_id in refreshed:  # cached copies and catalog pages, on every instance and at the edge
        await systems.changed(rt, system_id)
    return len(rows) + len(refreshed)
