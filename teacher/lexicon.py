"""Which words in a rationale name manipulable objects, and which of them mean the same thing.

A rationale that mentions a banana in a scene with a carrot and a plate has made something up;
to notice, the check needs to know that "banana" names an object at all. The vocabulary covers
objects robots pick up in the common manipulation datasets; scene fixtures (table, sink, wall)
are left out, since a rationale may mention them whatever the scene's object list says, and
so are words that are mostly something else ("can", "orange", "glass").
"""

from __future__ import annotations

import re
from collections.abc import Iterable

GRIPPER_WORDS = ("gripper", "end effector", "end-effector", "hand", "claw", "fingers")

OBJECT_NOUNS = frozenset(
    {
        "apple", "ball", "banana", "basket", "bin", "block", "book", "bottle", "bowl", "box",
        "bread", "brick", "broccoli", "brush", "cabbage", "carrot", "cheese", "chopstick", "cloth",
        "container", "cookie", "corn", "cube", "cucumber", "cup", "dish", "doll", "drawer", "egg",
        "eggplant", "fork", "grape", "jar", "kettle", "knife", "ladle", "lemon", "lid", "marker",
        "mug", "mushroom", "napkin", "pan", "peach", "pear", "pen", "pencil", "pepper", "phone",
        "plate", "pot", "potato", "rag", "sandwich", "spatula", "sponge", "spoon", "strawberry",
        "tablecloth", "tomato", "towel", "toy", "tray", "whisk",
    }
)  # fmt: skip

# words that name the same kind of object in rationales
_SYNONYM_GROUPS = (
    frozenset({"towel", "cloth", "tablecloth", "napkin", "rag"}),
    frozenset({"block", "cube", "brick"}),
    frozenset({"plate", "dish"}),
    frozenset({"cup", "mug"}),
    frozenset({"basket", "bin"}),
)

_WORD = re.compile(r"[a-z]+")


def singular(word: str) -> str:
    """A plural noun's singular, for the regular endings object names use."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("oes", "ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def synonyms(noun: str) -> frozenset[str]:
    """The noun and every word that names the same kind of object."""
    for group in _SYNONYM_GROUPS:
        if noun in group:
            return group
    return frozenset({noun})


def object_nouns(text: str) -> list[str]:
    """The vocabulary's object nouns a text mentions, singular, in order of first mention."""
    found: list[str] = []
    for word in _WORD.findall(text.lower()):
        noun = singular(word)
        if noun in OBJECT_NOUNS and noun not in found:
            found.append(noun)
    return found


def scene_nouns(objects: Iterable[str]) -> frozenset[str]:
    """Every noun that refers to one of the scene's objects, synonyms included."""
    nouns: set[str] = set()
    for name in objects:
        for word in _WORD.findall(name.lower()):
            nouns |= synonyms(singular(word))
    return frozenset(nouns)
