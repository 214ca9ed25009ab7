"""PDDL planning as a text environment (AgentBoard's "pddl": blocksworld, gripper, barman, tyreworld).

Domains and problems are parsed with the ``pddl`` package (PyPI; a Lark grammar for PDDL 3.1).
That package only parses, so this module adds the small simulator an episode needs: ground an
action from the agent's text, check its precondition (conjunctions of atoms, negations and
equalities, with typed parameters) and apply its add and delete effects.

Actions are written as the action name followed by its arguments, e.g. ``unstack b1 b2`` or
``pick ball1 rooma left``; hyphens may be spaces, parentheses and the filler words "from",
"on", "onto", "to", "in", "into", "with", "using", "the", "at" are ignored, so "unstack b1 from
b2" works too. ``check valid actions`` lists the actions valid in the current state (it is not
counted as a step of the plan but is a step of the episode).

Progress is AgentBoard's "match" rate: the share of the goal's literals that hold.
"""

from __future__ import annotations

import itertools
import random
import re
from functools import lru_cache
from pathlib import Path

from lm_eval_acbench.envs.base import INVALID_ACTION, Step
from lm_eval_acbench.metrics.progress import match_progress

DOMAIN_DIR = Path(__file__).resolve().parent / "pddl_domains"
GAMES = ("blocksworld", "gripper", "barman", "tyreworld")
FILLER = frozenset({"from", "on", "onto", "to", "in", "into", "with", "using", "the", "at"})
CHECK_VALID = "check valid actions"

DESCRIPTIONS = {
    "blocksworld": "You control a robot hand that moves blocks on a table.",
    "gripper": "You control a robot with two grippers that carries balls between rooms.",
    "barman": "You are a robot barman with two hands who prepares cocktails with shots and a shaker.",
    "tyreworld": "You must replace flat tyres: get the tools from the boot, swap the wheels and inflate them.",
}


# How AgentBoard words a fact (the effective entries of its pddl_env predicate_map): its rows'
# subgoals are these sentences, and its observations list them. Unlisted predicates are
# written "name arg ...".
AGENTBOARD_PHRASES = {
    "on": "{} is on {}.", "clear": "The {} is clear.", "arm-empty": "Your arm is empty.",
    "holding": "You are holding {}.", "on-table": "{} is on the table.",
    "isopen": "{} is open.", "closed": "{} is closed.", "have": "You have {}.", "in": "{} is in {}.",
    "loose": "The nut {} on the hub {} is loose.", "tight": "The nut {} on the hub {} is tight.",
    "unlocked": "{} is unlocked.", "on-ground": "Hub {} is on the ground.",
    "not-on-ground": "Hub {} is not on the ground.", "inflated": "Wheel {} is inflated.",
    "not-inflated": "Wheel {} is not inflated.", "fastened": "Hub {} is fastened.",
    "unfastened": "Hub {} is unfastened.", "free": "{} is free.", "intact": "Wheel {} is intact.",
    "ball": "{} is a ball.", "gripper": "{} is a gripper.", "at-robby": "Robby is at {}.",
    "at": "{} is at {}.", "carry": "{} is carrying {}.",
    "ontable": "{} is on the table.", "empty": "{} is empty.", "contains": "{} contains {}.",
    "clean": "{} is clean.", "dispenses": "{} dispenses {}.", "shaker-empty-level": "{} is at empty level {}.",
    "shaker-level": "{} is at level {}.", "next": "level {} is next to level {}.", "unshaked": "{} is unshaked.",
    "shaked": "{} is shaked.", "cocktail-part1": "{} part1 ingredient is {}.",
    "cocktail-part2": "{} part2 ingredient is {}.",
}


def fact_text(atom: tuple) -> str:
    """One fact ``(predicate, arg, ...)`` in AgentBoard's words."""
    phrase = AGENTBOARD_PHRASES.get(atom[0])
    if phrase is not None and phrase.count("{}") == len(atom) - 1:
        return phrase.format(*atom[1:])
    return " ".join(atom)


@lru_cache(maxsize=1)
def _parsers():
    """The pddl package's parsers; building their Lark grammars takes a second, so once."""
    from pddl.parser.domain import DomainParser
    from pddl.parser.problem import ProblemParser

    return DomainParser(), ProblemParser()


@lru_cache(maxsize=16)
def _parse_domain(text: str):
    return _parsers()[0](canonical_section_order(text))


# PDDL 3.1's grammar (and so the pddl package) wants a domain's sections in this order;
# pddlgym, which AgentBoard uses, takes any order (AgentBoard's tyreworld puts :constants last).
SECTION_ORDER = (":requirements", ":types", ":constants", ":predicates", ":functions")


def canonical_section_order(text: str) -> str:
    """A domain's text with its top-level ``(:requirements ...)``, ``(:types ...)``,
    ``(:constants ...)``, ``(:predicates ...)`` and ``(:functions ...)`` sections moved before
    its actions, in PDDL 3.1's order, and ``:typing`` required when it declares types; the
    text is returned as is when it does not split into balanced sections."""
    start = text.find("(")
    body_start = text.find("(", start + 1)
    if start < 0 or body_start < 0:
        return text
    sections, depth, begin = [], 0, None
    for index in range(body_start, len(text)):
        char = text[index]
        if char == ";":  # comments are rare in these files; keep the text untouched then
            return text
        if char == "(":
            if depth == 0:
                begin = index
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                sections.append(text[begin:index + 1])
            elif depth < 0:
                tail = index
                break
    else:
        return text
    def rank(section: str) -> int:
        head = section[1:].split(None, 1)[0].lower() if len(section) > 1 else ""
        if head == "domain":
            return -1
        return SECTION_ORDER.index(head) if head in SECTION_ORDER else len(SECTION_ORDER)
    heads = [section[1:].split(None, 1)[0].lower() for section in sections if len(section) > 1]
    if ":types" in heads and ":typing" not in text.lower():  # pddlgym infers typing; PDDL 3.1 wants it said
        if ":requirements" in heads:
            at = heads.index(":requirements")
            sections[at] = sections[at][:-1] + " :typing)"
        else:
            sections.append("(:requirements :strips :typing)")
    head = text[start:body_start]
    return head + "\n".join(sorted(sections, key=rank)) + text[tail:]


def _parse_problem(text: str):
    return _parsers()[1](text)


def domain_text(game: str) -> str:
    path = DOMAIN_DIR / f"{game}.pddl"
    if not path.is_file():
        raise ValueError(f"unknown PDDL game {game!r}; known: {', '.join(GAMES)}")
    return path.read_text()


def _atom(predicate, binding: dict) -> tuple:
    return (predicate.name, *(binding.get(term.name, term.name) if _is_var(term) else term.name for term in predicate.terms))


def _is_var(term) -> bool:
    return type(term).__name__ == "Variable"


def _literals(formula) -> list[tuple[bool, object]]:
    """Flatten a conjunction into (positive, sub-formula) pairs."""
    kind = type(formula).__name__
    if kind == "And":
        return [lit for operand in formula.operands for lit in _literals(operand)]
    if kind == "Not":
        return [(not positive, sub) for positive, sub in _literals(formula.argument)]
    return [(True, formula)]


def _holds(formula, state: frozenset, binding: dict) -> bool:
    kind = type(formula).__name__
    if kind == "And":
        return all(_holds(operand, state, binding) for operand in formula.operands)
    if kind == "Not":
        return not _holds(formula.argument, state, binding)
    if kind == "Or":
        return any(_holds(operand, state, binding) for operand in formula.operands)
    if kind == "EqualTo":
        left, right = (binding.get(t.name, t.name) if _is_var(t) else t.name for t in (formula.left, formula.right))
        return left == right
    if kind == "Predicate":
        return _atom(formula, binding) in state
    raise ValueError(f"unsupported PDDL formula {kind}")


class PddlSim:
    """State, typed objects and actions of one PDDL problem."""

    def __init__(self, domain_pddl: str, problem_pddl: str) -> None:
        self.domain = _parse_domain(domain_pddl)
        self.problem = _parse_problem(problem_pddl)
        parents = dict(self.domain.types or {})
        self.objects: dict[str, set[str]] = {}
        for obj in [*self.domain.constants, *self.problem.objects]:
            types = set(obj.type_tags) or {"object"}
            for tag in list(types):
                seen = tag
                while parents.get(seen):
                    seen = parents[seen]
                    types.add(seen)
            types.add("object")
            self.objects[obj.name] = types
        self.actions = {action.name: action for action in self.domain.actions}
        self.state = frozenset(_atom(p, {}) for p in self.problem.init)
        self.goal = [(positive, _atom(sub, {})) for positive, sub in _literals(self.problem.goal)]

    # ---- reading the state -------------------------------------------------------------
    def goal_status(self) -> list[bool]:
        return [(atom in self.state) == positive for positive, atom in self.goal]

    def progress(self) -> float:
        return match_progress(self.goal_status())

    def describe_state(self) -> str:
        """The state as AgentBoard shows it: each fact in its words, capitalised, sorted."""
        sentences = sorted(fact_text(atom)[:1].upper() + fact_text(atom)[1:] for atom in self.state)
        return " ".join(sentences) or "(nothing)"

    def goal_sentences(self) -> list[str]:
        """The goal's facts in AgentBoard's words (the form of its rows' ``subgoals``), sorted."""
        return sorted(("" if positive else "not ") + fact_text(atom) for positive, atom in self.goal)

    def describe_goal(self) -> str:
        return " ".join(self.goal_sentences())

    # ---- acting ------------------------------------------------------------------------
    def parse_action(self, text: str) -> tuple[str, tuple[str, ...]] | None:
        """(action name, arguments) for the agent's text, or None when it names no action:
        :func:`parse_action`, else AgentBoard's looser reading (:func:`parse_action_anywhere`)."""
        arity = self.actions_arity()
        return parse_action(text, arity) or parse_action_anywhere(text, arity, self.objects)

    def actions_arity(self) -> dict[str, int]:
        return {name: len(action.parameters) for name, action in self.actions.items()}

    def _binding(self, name: str, args: tuple[str, ...]) -> dict | None:
        action = self.actions[name]
        if len(args) != len(action.parameters):
            return None
        binding = {}
        for parameter, arg in zip(action.parameters, args):
            if arg not in self.objects:
                return None
            wanted = set(parameter.type_tags)
            if wanted and not wanted & self.objects[arg]:
                return None
            binding[parameter.name] = arg
        return binding

    def applicable(self, name: str, args: tuple[str, ...]) -> bool:
        binding = self._binding(name, args)
        return binding is not None and _holds(self.actions[name].precondition, self.state, binding)

    def apply(self, name: str, args: tuple[str, ...]) -> bool:
        """Apply the action when its precondition holds; return whether it did."""
        binding = self._binding(name, args)
        action = self.actions[name]
        if binding is None or not _holds(action.precondition, self.state, binding):
            return False
        adds, dels = set(), set()
        for positive, sub in _literals(action.effect):
            (adds if positive else dels).add(_atom(sub, binding))
        self.state = frozenset((self.state - dels) | adds)
        return True

    def valid_actions(self, limit: int = 200) -> list[str]:
        found = []
        for name, action in sorted(self.actions.items()):
            pools = []
            for parameter in action.parameters:
                wanted = set(parameter.type_tags)
                pools.append(sorted(o for o, types in self.objects.items() if not wanted or wanted & types))
            for args in itertools.product(*pools):
                if self.applicable(name, tuple(args)):
                    found.append(" ".join([name, *args]))
                    if len(found) >= limit:
                        return found
        return found


def shortest_plan(sim: PddlSim, limit: int | None = 20000) -> list[str] | None:
    """A shortest plan to progress 1.0 by breadth-first search over ``sim``'s own valid actions
    (a reference solution for tests and for writing examples), or None when none is found within
    ``limit`` visited states (``None``: no limit). ``sim``'s state is left as it was."""
    from collections import deque

    start = sim.state
    frontier, seen = deque([(start, [])]), {start}
    try:
        while frontier and (limit is None or len(seen) < limit):
            state, plan = frontier.popleft()
            sim.state = state
            if sim.progress() >= 1.0:
                return plan
            for action in sim.valid_actions(limit=10000):
                name, *args = action.split()
                sim.state = state
                sim.apply(name, tuple(args))
                if sim.state not in seen:
                    seen.add(sim.state)
                    frontier.append((sim.state, plan + [action]))
        return None
    finally:
        sim.state = start

_WORD = re.compile(r"[a-z0-9_\-]+")
MAX_TEXT_CHARS = 2000


def parse_action(text: str, arity: dict[str, int]) -> tuple[str, tuple[str, ...]] | None:
    """Match free text to ``action arg...``: the longest action name that prefixes the words.

    Hyphens and spaces in action names are interchangeable; filler words between arguments are
    dropped. Returns None when no action name prefixes the text or the argument count differs.
    """
    if not isinstance(text, str):
        return None
    words = _WORD.findall(text.lower().replace("(", " ").replace(")", " "))
    if not words:
        return None
    best = None
    for name in arity:
        name_words = [w for w in re.split(r"[\-\s_]+", name.lower()) if w]
        for joined in (name_words, [name.lower()]):
            if words[: len(joined)] == joined and (best is None or len(joined) > best[1]):
                best = (name, len(joined))
    if best is None:
        return None
    name, used = best
    args = tuple(w for w in words[used:] if w not in FILLER)
    if len(args) != arity[name]:
        return None
    return name, args


def parse_action_anywhere(text, arity: dict[str, int], objects) -> tuple[str, tuple[str, ...]] | None:
    """AgentBoard's reading of an action: the first word that is an action name, then the
    words that name objects, in order, the first ``arity`` of them ("Pick up ball1 at rooma
    with arm left" -> ``pick ball1 rooma left``). None when there is no action word or too few
    objects."""
    if not isinstance(text, str):
        return None
    words = _WORD.findall(text[:MAX_TEXT_CHARS].lower().replace("(", " ").replace(")", " "))
    names = {name.lower(): name for name in arity}
    for index, word in enumerate(words):
        if word in names:
            name = names[word]
            args = tuple(w for w in words[index + 1:] if w in objects)[: arity[name]]
            return (name, args) if len(args) == arity[name] else None
    return None


class PddlEnv:
    tools: list = []

    def __init__(self, game: str, domain_pddl: str, problem_pddl: str, goal_text: str | None = None) -> None:
        self.game = game
        self.sim = PddlSim(domain_pddl, problem_pddl)
        schemas = []
        for name, action in sorted(self.sim.actions.items()):
            params = " ".join(f"<{p.name}{':' + '/'.join(sorted(p.type_tags)) if p.type_tags else ''}>" for p in action.parameters)
            schemas.append(f"  {name} {params}".rstrip())
        self.instructions = (
            f"{DESCRIPTIONS.get(game, 'Solve the planning problem.')}\n"
            "Each turn, answer with exactly one action: the action name followed by its arguments, "
            "for example `" + _example(self.sim) + "`. Available actions:\n" + "\n".join(schemas) + "\n"
            f"Objects: {', '.join(sorted(self.sim.objects))}.\n"
            f"Answer `{CHECK_VALID}` to list the actions that are valid now."
        )
        self.acted = False
        self.goal = goal_text or f"The goal is to satisfy the following conditions: {self.sim.describe_goal()}"

    def reset(self) -> str:
        self.acted = False
        return self.sim.describe_state()

    def progress(self) -> float:
        """AgentBoard's: the share of goal facts that hold, counted from the first valid action
        on (before it, 0 -- facts true from the start earn nothing by themselves)."""
        return self.sim.progress() if self.acted else 0.0

    def step(self, action: str) -> Step:
        if "check" in action.lower():  # AgentBoard's rule
            valid = self.sim.valid_actions()
            return Step("Valid actions: " + ("; ".join(valid) or "none") + ".", self.progress())
        parsed = self.sim.parse_action(action)
        if parsed is None or not self.sim.apply(*parsed):
            return Step(f"{INVALID_ACTION} Current state: {self.sim.describe_state()}", self.progress(), valid=False)
        self.acted = True
        progress = self.progress()
        return Step(f"You did: {' '.join([parsed[0], *parsed[1]])}. Current state: {self.sim.describe_state()}"
                    + (" The goal is satisfied." if progress >= 1.0 else ""),
                    progress, done=progress >= 1.0)

    def close(self) -> None:
        pass


def _example(sim: PddlSim) -> str:
    valid = sim.valid_actions(limit=1)
    return valid[0] if valid else next(iter(sim.actions))


def make_env(record: dict) -> PddlEnv:
    """Build from an episode record: ``game_name`` plus ``problem`` (PDDL text); ``domain``
    (PDDL text; the loader puts AgentBoard's there) overrides the bundled domain of that game."""
    game = str(record.get("game_name") or record.get("subset") or "")
    domain = record.get("domain") or domain_text(game)
    problem = record.get("problem")
    if not problem:
        raise ValueError("PDDL episode has no 'problem' text")
    return PddlEnv(game, domain, problem, record.get("goal") or None)


# ---- seeded instance generators (our sample set) ----------------------------------------------
def _problem(game: str, name: str, objects: str, init: list[str], goal: list[str]) -> str:
    return (f"(define (problem {name}) (:domain {game})\n  (:objects {objects})\n  (:init {' '.join(init)})\n"
            f"  (:goal (and {' '.join(goal)})))\n")


def _towers(blocks: list[str], rng: random.Random) -> list[list[str]]:
    towers: list[list[str]] = []
    for block in blocks:
        if towers and rng.random() < 0.6:
            rng.choice(towers).append(block)
        else:
            towers.append([block])
    return towers


def generate_blocksworld(n: int, seed: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    blocks = [f"b{i}" for i in range(1, n + 1)]
    start = _towers(rng.sample(blocks, n), rng)
    init = ["(handempty)"]
    for tower in start:
        init.append(f"(ontable {tower[0]})")
        init += [f"(on {up} {down})" for down, up in zip(tower, tower[1:])]
        init.append(f"(clear {tower[-1]})")
    while True:
        target = _towers(rng.sample(blocks, n), rng)
        goal = [f"(on {up} {down})" for tower in target for down, up in zip(tower, tower[1:])]
        if goal and not set(goal) <= set(init):
            break
    return _problem("blocksworld", f"bw-{seed}", " ".join(blocks), init, goal), goal


def generate_gripper(n: int, seed: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    balls = [f"ball{i}" for i in range(1, n + 1)]
    init = ["(at-robby rooma)", "(free left)", "(free right)"] + [f"(at {b} rooma)" for b in balls]
    moved = sorted(rng.sample(balls, max(1, n - rng.randrange(0, 2))))
    goal = [f"(at {b} roomb)" for b in moved]
    objects = f"rooma roomb - room {' '.join(balls)} - ball left right - gripper"
    return _problem("gripper", f"gripper-{seed}", objects, init, goal), goal


def generate_tyreworld(n: int, seed: int) -> tuple[str, list[str]]:
    wheels = [str(i) for i in range(1, n + 1)]
    objects = ("boot - container jack pump wrench - tool "
               + " ".join(f"w{i} r{i}" for i in wheels) + " - wheel "
               + " ".join(f"nuts{i}" for i in wheels) + " - nut "
               + " ".join(f"hub{i}" for i in wheels) + " - hub")
    init = ["(closed boot)", "(in jack boot)", "(in pump boot)", "(in wrench boot)",
            "(jack jack)", "(pump pump)", "(wrench wrench)"]
    goal = []
    for i in wheels:
        init += [f"(intact r{i})", f"(in r{i} boot)", f"(not-inflated r{i})", f"(on w{i} hub{i})",
                 f"(on-ground hub{i})", f"(tight nuts{i} hub{i})", f"(fastened hub{i})"]
        goal += [f"(on r{i} hub{i})", f"(inflated r{i})", f"(tight nuts{i} hub{i})", f"(in w{i} boot)"]
    return _problem("tyreworld", f"tyre-{seed}", objects, init, goal), goal


def generate_barman(n: int, seed: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    ingredients = ["gin", "tonic", "lime", "rum", "cola"]
    cocktails = []
    init = ["(handempty left)", "(handempty right)", "(ontable shaker1)", "(empty shaker1)",
            "(clean shaker1)", "(unshaken shaker1)"]
    shots = [f"shot{i}" for i in range(1, n + 3)]
    for shot in shots:
        init += [f"(ontable {shot})", f"(empty {shot})", f"(clean {shot})"]
    for ing in ingredients:
        init.append(f"(dispenses dispenser-{ing} {ing})")
    goal = []
    for i in range(1, n + 1):
        a, b = rng.sample(ingredients, 2)
        cocktails.append(f"cocktail{i}")
        init += [f"(cocktail-part1 cocktail{i} {a})", f"(cocktail-part2 cocktail{i} {b})"]
        goal.append(f"(contains shot{i} cocktail{i})")
    objects = (f"left right - hand shaker1 - shaker {' '.join(shots)} - shot "
               f"{' '.join(ingredients)} - ingredient {' '.join(cocktails)} - cocktail "
               + " ".join(f"dispenser-{ing}" for ing in ingredients) + " - dispenser")
    return _problem("barman", f"barman-{seed}", objects, init, goal), goal


GENERATORS = {
    "blocksworld": (generate_blocksworld, (3, 4, 5)),
    "gripper": (generate_gripper, (2, 3, 4)),
    "tyreworld": (generate_tyreworld, (1, 1, 2)),
    "barman": (generate_barman, (1, 1, 2)),
}


def generate_records(game: str, count: int, seed: int = 0) -> list[dict]:
    """Seeded instances of a game, as AgentBoard-style episode records (our sample set)."""
    generate, sizes = GENERATORS[game]
    records = []
    for index in range(count):
        size = sizes[index % len(sizes)]
        problem, goal = generate(size, seed * 1000 + index)
        difficulty = "easy" if size == sizes[0] else "hard"
        facts = [g.strip("()") for g in goal]
        records.append({"id": index, "game_name": game, "difficulty": difficulty, "problem": problem,
                        "goal": "The goal is to reach a state where: " + ", ".join(facts) + ".",
                        "subgoals": facts})
    return records
