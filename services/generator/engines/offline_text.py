"""The built-in text engine: a template story built from the prompt, deterministic, no network, not an AI model.

Same (prompt, parts, style, seed) -> the same story, byte for byte. The story has
a beginning, a turn and an ending around the prompt's subject, and streams its
document in small chunks so the live view works without a model.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from services.generator.engines.base import EngineInfo, TextRequest
from services.generator.story_format import Character, Part, Story

ENGINE_NAME = "offline"
MODEL_NAME = "dreamforge-offline-template-1"
CHUNK_CHARS = 24

_ARTICLES = {"a", "an", "the", "some", "my", "our", "one"}
_CLAUSE_WORDS = {"who", "that", "which", "and", "with", "while", "when", "where", "in", "on", "at", "from", "to", "for"}

_PLACES = [
    ("a forest of tall silver birches", "forest"),
    ("a harbour town where gulls argued on the rooftops", "harbour"),
    ("a mountain village above the clouds", "mountain"),
    ("a sleepy valley covered in snow", "snow"),
    ("a desert oasis ringed with date palms", "desert"),
    ("a meadow of poppies beside a slow river", "meadow"),
    ("an old city of crooked towers and bridges", "city"),
    ("a misty island at the edge of the map", "island"),
]
# Words in a prompt that choose the place (the first match wins; otherwise the seed chooses).
_PLACE_CUES = {
    "harbour": ("sea", "harbour", "harbor", "ocean", "lighthouse", "whale", "ship", "boat", "fish"),
    "island": ("island", "pirate", "treasure"),
    "snow": ("snow", "winter", "ice", "penguin", "polar"),
    "mountain": ("mountain", "mine", "cave", "peak", "hill", "dragon"),
    "desert": ("desert", "sand", "camel", "oasis"),
    "forest": ("forest", "wood", "tree", "bear", "owl", "fox", "wolf"),
    "meadow": ("meadow", "river", "field", "garden", "flower", "bee"),
    "city": ("city", "town", "castle", "tower", "king", "queen", "robot"),
}
_COMPANIONS = [
    ("Pip", "a small grey mouse with a red scarf and round spectacles"),
    ("Odette", "a tall white heron with a blue ribbon on one leg"),
    ("Tumble", "a stout hedgehog in a patched green waistcoat"),
    ("Marlo", "a clever orange fox with a lantern and a torn ear"),
    ("Wren", "a tiny brown wren with a yellow satchel"),
    ("Sage", "an old tortoise with a mossy shell and a walking stick"),
]
_HERO_NAMES = ["Bramble", "Juniper", "Hazel", "Rowan", "Clover", "Fennel", "Tansy", "Briar", "Linden", "Moss"]
_HERO_LOOKS = [
    "with a bright yellow scarf and curious amber eyes",
    "wearing a tiny red cap and carrying a knapsack",
    "with a blue cloak and a star-shaped patch on one shoulder",
    "with a green hood and muddy boots",
    "with a striped purple jumper and a brave little grin",
]
_OBSTACLES = [
    ("a storm rolled in and the path vanished under the rain", "storm"),
    ("a locked gate stood in the way, and its keeper asked a riddle", "gate"),
    ("the river rose and swept the only bridge away", "river"),
    ("night fell, and the stars were the only guide", "night"),
    ("a grumpy giant sat across the road and would not move", "giant"),
    ("the map turned out to be missing its last corner", "map"),
]
_EPISODES = [
    "They crossed a field where the grass whispered old songs, and {companion} taught {hero} one of them.",
    "At a crossroads an old signpost pointed every way at once, so they chose the road that smelled of bread.",
    "They shared supper with a family of rabbits, who warned them about the road ahead.",
    "A kind baker gave them a loaf for the journey, and {hero} promised to bring back a story in return.",
    "They climbed a hill to look ahead, and far away something glittered in the sun.",
    "A flock of starlings drew arrows in the sky, as if to show them the way.",
]
_ENDINGS = [
    "and when they came home, everyone agreed it was the best thing that had happened all year",
    "and from then on, whenever someone felt lost, they told the story of that day",
    "and the two friends laughed all the way home under a sky full of stars",
    "and {hero} learned that the bravest thing is to ask a friend for help",
]


@dataclass(frozen=True)
class _Subject:
    hero_noun: str  # "bear"
    goal: str  # "finds a mine full of honey" (may be empty)
    phrase: str  # the prompt as a sentence fragment


def _subject_of(prompt: str) -> _Subject:
    words = re.findall(r"[\w'’-]+", prompt)
    noun_words: list[str] = []
    rest_start = len(words)
    for index, word in enumerate(words):
        lowered = word.lower()
        if not noun_words and lowered in _ARTICLES:
            continue
        if noun_words and (lowered in _CLAUSE_WORDS or len(noun_words) >= 4):
            rest_start = index
            break
        noun_words.append(word)
    hero_noun = " ".join(noun_words) or "traveller"
    rest = words[rest_start:]
    if rest and rest[0].lower() in {"who", "that", "which"}:
        rest = rest[1:]
    if rest and rest[0].lower() == "and":
        rest = rest[1:]
    if rest and rest[0].lower() in _CLAUSE_WORDS:
        # "a dragon in space": no verb to build a goal from, so the hero explores the place.
        goal = "find out what waits " + " ".join(rest)
    elif rest and rest[0].lower() in _ARTICLES:
        goal = "meet " + " ".join(rest)
    elif rest:
        goal = " ".join([_base_form(rest[0]), *rest[1:]])
    else:
        goal = ""
    phrase = " ".join(prompt.split()).rstrip(".!?")
    return _Subject(hero_noun=hero_noun, goal=goal, phrase=phrase)


def _place_for(prompt: str, rng: random.Random) -> tuple[str, str]:
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    for word, cues in _PLACE_CUES.items():
        if words & set(cues):
            return next(place for place in _PLACES if place[1] == word)
    return rng.choice(_PLACES)


def _base_form(verb: str) -> str:
    """``finds`` -> ``find``, ``catches`` -> ``catch``, ``flies`` -> ``fly`` (good enough for a template)."""
    lowered = verb.lower()
    if lowered.endswith("ies") and len(lowered) > 4:
        return verb[:-3] + "y"
    if lowered.endswith(("ches", "shes", "sses", "xes", "zes")):
        return verb[:-2]
    if lowered.endswith("s") and not lowered.endswith(("ss", "us", "is")):
        return verb[:-1]
    return verb


def _seed_of(request: TextRequest) -> int:
    material = f"{request.prompt}\x00{request.parts}\x00{request.style}\x00{request.seed}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big")


def compose_story(request: TextRequest) -> Story:
    """The story for this request: deterministic, a beginning, a turn and an ending around the prompt's subject."""
    rng = random.Random(_seed_of(request))
    subject = _subject_of(request.prompt)
    hero = f"{rng.choice(_HERO_NAMES)} the {subject.hero_noun}"
    hero_look = f"a {subject.hero_noun} {rng.choice(_HERO_LOOKS)}"
    companion, companion_look = rng.choice(_COMPANIONS)
    place, place_word = _place_for(request.prompt, rng)
    obstacle, obstacle_word = rng.choice(_OBSTACLES)
    ending = rng.choice(_ENDINGS).format(hero=hero)
    goal = subject.goal or "find something wonderful"
    episodes = rng.sample(_EPISODES, k=len(_EPISODES))

    beginning = Part(
        index=0,
        title=f"{hero.split()[0]} and the Idea",
        text=(
            f"Once upon a time, in {place}, there lived {hero}. "
            f"Everyone knew {hero.split()[0]} as the one who wondered about everything, "
            f"and one morning the wondering turned into a plan: to {goal}. "
            f"“It started with {subject.phrase.lower()},” {hero.split()[0]} would say later, "
            f"“and with a friend called {companion}.”"
        ),
        illustration_prompt=f"{hero} setting out at dawn from {place}, with {companion} waving beside them",
    )
    turn = Part(
        index=0,
        title=f"The {obstacle_word.capitalize()}",
        text=(
            f"Halfway there, {obstacle}. {hero.split()[0]} wanted to turn back, "
            f"but {companion} remembered an old trick, and together they found another way: "
            f"slowly, carefully, one step and then the next."
        ),
        illustration_prompt=f"{hero} and {companion} facing the {obstacle_word} together, {place_word} around them",
    )
    end = Part(
        index=0,
        title="Home Again",
        text=(
            f"At last they did it: {hero.split()[0]} managed to {goal}. "
            f"They shared it with everyone in {place}, {ending}."
        ),
        illustration_prompt=f"{hero} and {companion} celebrating with friends in {place}, warm evening light",
    )
    middles = [
        Part(
            index=0,
            title=f"On the Road, Day {number + 1}",
            text=episodes[number % len(episodes)].format(hero=hero.split()[0], companion=companion),
            illustration_prompt=f"{hero} and {companion} travelling through the {place_word}, day {number + 1}",
        )
        for number in range(max(0, request.parts - 3))
    ]
    if request.parts == 1:
        arc = [Part(0, beginning.title, f"{beginning.text} {turn.text} {end.text}", beginning.illustration_prompt)]
    elif request.parts == 2:
        arc = [beginning, Part(0, turn.title, f"{turn.text} {end.text}", turn.illustration_prompt)]
    else:
        half = len(middles) // 2
        arc = [beginning, *middles[:half], turn, *middles[half:], end]
    # "... at night" in the prompt: every picture is a night scene.
    sky = ", under a night sky full of stars" if re.search(r"\bnight\b", request.prompt.lower()) else ""
    parts = tuple(Part(index, p.title, p.text, p.illustration_prompt + sky) for index, p in enumerate(arc))
    characters = (
        Character(name=hero, description=hero_look),
        Character(name=companion, description=companion_look),
    )
    title = f"{hero} and the {obstacle_word.capitalize()}"
    return Story(title=title, characters=characters, parts=parts)


class OfflineTextEngine:
    """Writes template stories; the manifest and the UI say it is not an AI model."""

    def __init__(self) -> None:
        self.info = EngineInfo(engine=ENGINE_NAME, model=MODEL_NAME, offline=True, parameters={"template": "arc-v1"})

    async def write_story(self, request: TextRequest) -> AsyncIterator[str]:
        document = compose_story(request).to_json()
        for start in range(0, len(document), CHUNK_CHARS):
            yield document[start : start + CHUNK_CHARS]
            # Let the pipeline store parts and stream deltas between chunks, as with a model.
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        return None
