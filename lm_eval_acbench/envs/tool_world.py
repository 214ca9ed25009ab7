"""The fixed world behind the simulated tools: small tables and in-memory state, no network.

Query tools read the tables below (weather, movies, papers). Operation tools change an episode's
state: ``{"todos": [{"title", "due", "done"}], "sheets": {name: [row dict, ...]}}``.
Every handler takes the state first and the tool's arguments as keywords, and raises
:class:`ToolError` with a message the agent sees for a bad argument.
"""

from __future__ import annotations

import copy
from typing import Any


class ToolError(Exception):
    pass


WEATHER = {
    ("paris", "2024-05-01"): {"condition": "sunny", "high_c": 19, "low_c": 9},
    ("paris", "2024-05-02"): {"condition": "rain", "high_c": 14, "low_c": 8},
    ("tokyo", "2024-05-01"): {"condition": "cloudy", "high_c": 22, "low_c": 15},
    ("tokyo", "2024-05-02"): {"condition": "sunny", "high_c": 25, "low_c": 16},
    ("nairobi", "2024-05-01"): {"condition": "thunderstorms", "high_c": 24, "low_c": 14},
    ("oslo", "2024-05-01"): {"condition": "snow", "high_c": 3, "low_c": -2},
}

MOVIES = [
    {"movie_id": "m1", "title": "The Quiet Harbor", "year": 2011, "director": "Lena Ortiz",
     "cast": ["Sam Reed", "Ana Moreau"], "rating": 7.8, "runtime_min": 112},
    {"movie_id": "m2", "title": "Glass Orchard", "year": 2016, "director": "Tomas Berg",
     "cast": ["Ana Moreau", "Kofi Mensah"], "rating": 6.9, "runtime_min": 98},
    {"movie_id": "m3", "title": "Northern Lines", "year": 2019, "director": "Lena Ortiz",
     "cast": ["Kofi Mensah", "Yui Tanaka"], "rating": 8.3, "runtime_min": 131},
    {"movie_id": "m4", "title": "Paper Moons", "year": 2021, "director": "Rafael Sousa",
     "cast": ["Sam Reed", "Yui Tanaka"], "rating": 7.1, "runtime_min": 104},
]

PAPERS = [
    {"paper_id": "p1", "title": "Sparse Attention for Long Documents", "year": 2020,
     "authors": ["Mira Chen", "Jonas Weber"], "venue": "ACL", "citations": 412},
    {"paper_id": "p2", "title": "Quantized Agents Still Plan", "year": 2023,
     "authors": ["Jonas Weber", "Priya Nair"], "venue": "NeurIPS", "citations": 57},
    {"paper_id": "p3", "title": "Pruning Without Forgetting", "year": 2022,
     "authors": ["Priya Nair"], "venue": "ICML", "citations": 133},
    {"paper_id": "p4", "title": "Tool Use in Small Language Models", "year": 2024,
     "authors": ["Mira Chen", "Ola Hansen"], "venue": "EMNLP", "citations": 21},
]

AUTHORS = {
    "mira chen": {"name": "Mira Chen", "affiliation": "University of Lisbon"},
    "jonas weber": {"name": "Jonas Weber", "affiliation": "TU Munich"},
    "priya nair": {"name": "Priya Nair", "affiliation": "IIT Madras"},
    "ola hansen": {"name": "Ola Hansen", "affiliation": "University of Oslo"},
}


def default_state() -> dict:
    return {
        "todos": [
            {"title": "buy milk", "due": "2024-05-02", "done": False},
            {"title": "call the plumber", "due": "2024-05-03", "done": False},
            {"title": "book flights", "due": "2024-05-10", "done": True},
        ],
        "sheets": {
            "budget": [
                {"item": "rent", "amount": 1200, "month": "May"},
                {"item": "food", "amount": 400, "month": "May"},
                {"item": "travel", "amount": 150, "month": "May"},
            ],
            "inventory": [
                {"product": "pens", "stock": 40},
                {"product": "paper", "stock": 12},
            ],
        },
    }


def _key(text: Any) -> str:
    return " ".join(str(text).lower().replace("_", " ").split())


# ---- query tools ---------------------------------------------------------------------------
def get_weather(state, city, date):
    found = WEATHER.get((_key(city), str(date).strip()))
    if found is None:
        raise ToolError(f"no forecast for {city} on {date}")
    return {"city": str(city).title(), "date": str(date).strip(), **found}


def search_movies(state, query):
    words = _key(query).split()
    hits = [m for m in MOVIES if all(w in _key(m["title"]) + " " + _key(m["director"]) for w in words)]
    return [{"movie_id": m["movie_id"], "title": m["title"], "year": m["year"]} for m in hits]


def get_movie(state, movie_id):
    for movie in MOVIES:
        if movie["movie_id"] == str(movie_id).strip():
            return copy.deepcopy(movie)
    raise ToolError(f"no movie with id {movie_id}")


def search_papers(state, query):
    words = _key(query).split()
    hits = [p for p in PAPERS if all(w in _key(p["title"]) + " " + _key(" ".join(p["authors"])) for w in words)]
    return [{"paper_id": p["paper_id"], "title": p["title"], "year": p["year"]} for p in hits]


def get_paper(state, paper_id):
    for paper in PAPERS:
        if paper["paper_id"] == str(paper_id).strip():
            return copy.deepcopy(paper)
    raise ToolError(f"no paper with id {paper_id}")


def get_author(state, name):
    found = AUTHORS.get(_key(name))
    if found is None:
        raise ToolError(f"no author named {name}")
    papers = [p["title"] for p in PAPERS if found["name"] in p["authors"]]
    return {**found, "papers": papers}


# ---- operation tools -----------------------------------------------------------------------
def _todo(state, title):
    for todo in state["todos"]:
        if _key(todo["title"]) == _key(title):
            return todo
    raise ToolError(f"no to-do item titled {title!r}")


def list_todos(state):
    return copy.deepcopy(state["todos"])


def add_todo(state, title, due=None):
    if not str(title).strip():
        raise ToolError("title must not be empty")
    state["todos"].append({"title": str(title).strip(), "due": due, "done": False})
    return {"added": str(title).strip()}


def complete_todo(state, title):
    _todo(state, title)["done"] = True
    return {"completed": str(title)}


def delete_todo(state, title):
    state["todos"].remove(_todo(state, title))
    return {"deleted": str(title)}


def _sheet(state, sheet):
    rows = state["sheets"].get(_key(sheet))
    if rows is None:
        raise ToolError(f"no sheet named {sheet!r}; sheets: {', '.join(state['sheets'])}")
    return rows


def read_sheet(state, sheet):
    return copy.deepcopy(_sheet(state, sheet))


def update_cell(state, sheet, row, column, value):
    rows = _sheet(state, sheet)
    try:
        index = int(row)
    except (TypeError, ValueError) as exc:
        raise ToolError("row must be a row number starting at 1") from exc
    if not 1 <= index <= len(rows):
        raise ToolError(f"row must be between 1 and {len(rows)}")
    if column not in rows[index - 1]:
        raise ToolError(f"no column {column!r}; columns: {', '.join(rows[index - 1])}")
    rows[index - 1][column] = value
    return {"updated": {"row": index, "column": column, "value": value}}


def add_row(state, sheet, values):
    rows = _sheet(state, sheet)
    if not isinstance(values, dict):
        raise ToolError("values must be an object of column: value")
    rows.append(dict(values))
    return {"added_row": len(rows)}


def finish(state, answer=""):
    return {"answer": answer}


HANDLERS = {f.__name__: f for f in (get_weather, search_movies, get_movie, search_papers, get_paper, get_author,
                                     list_todos, add_todo, complete_todo, delete_todo, read_sheet, update_cell,
                                     add_row, finish)}
QUERY_TOOLS = ("get_weather", "search_movies", "get_movie", "search_papers", "get_paper", "get_author")
OPERATION_TOOLS = ("list_todos", "add_todo", "complete_todo", "delete_todo", "read_sheet", "update_cell", "add_row")

TOOL_SPECS: dict[str, dict] = {
    "get_weather": {"description": "the forecast for a city on a date (YYYY-MM-DD)",
                    "params": {"city": "string", "date": "string"}},
    "search_movies": {"description": "movies whose title or director contains all the words",
                      "params": {"query": "string"}},
    "get_movie": {"description": "details of a movie: year, director, cast, rating, runtime",
                  "params": {"movie_id": "string"}},
    "search_papers": {"description": "papers whose title or authors contain all the words",
                      "params": {"query": "string"}},
    "get_paper": {"description": "details of a paper: authors, year, venue, citations",
                  "params": {"paper_id": "string"}},
    "get_author": {"description": "an author's affiliation and papers", "params": {"name": "string"}},
    "list_todos": {"description": "all to-do items", "params": {}},
    "add_todo": {"description": "add a to-do item (due date optional)",
                 "params": {"title": "string", "due": "string"}, "optional": ["due"]},
    "complete_todo": {"description": "mark a to-do item as done", "params": {"title": "string"}},
    "delete_todo": {"description": "delete a to-do item", "params": {"title": "string"}},
    "read_sheet": {"description": "all rows of a sheet (rows are numbered from 1)", "params": {"sheet": "string"}},
    "update_cell": {"description": "set one cell of a sheet",
                    "params": {"sheet": "string", "row": "integer", "column": "string", "value": "string"}},
    "add_row": {"description": "append a row to a sheet",
                "params": {"sheet": "string", "values": "object"}},
    "finish": {"description": "end the episode, with the final answer when one is asked for",
               "params": {"answer": "string"}, "optional": ["answer"]},
}


def signature(name: str, spec: dict) -> str:
    return f"{name}(" + ", ".join(f"{p}: {t}" for p, t in spec["params"].items()) + ")"


def as_schema(name: str, spec: dict) -> dict:
    """The tool as a JSON-schema function description (for chat templates that take tools)."""
    optional = set(spec.get("optional", []))
    return {"type": "function", "function": {
        "name": name, "description": spec["description"],
        "parameters": {"type": "object",
                       "properties": {p: {"type": t} for p, t in spec["params"].items()},
                       "required": [p for p in spec["params"] if p not in optional]}}}


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return _key(a) == _key(b)


def state_check(state: dict, check: dict) -> bool:
    """Whether one Tool-Operation subgoal holds in ``state``.

    Kinds: ``todo_done`` / ``todo_exists`` (optional ``due``) / ``todo_absent`` with ``title``;
    ``cell`` with ``sheet``, ``row`` (from 1), ``column``, ``value``; ``row_exists`` with
    ``sheet`` and ``values`` (every given column must match one row).
    """
    kind = check.get("state")
    if kind in ("todo_done", "todo_exists", "todo_absent"):
        todos = [t for t in state["todos"] if _key(t["title"]) == _key(check.get("title", ""))]
        if kind == "todo_absent":
            return not todos
        if kind == "todo_done":
            return any(t["done"] for t in todos)
        return any(check.get("due") is None or _same(t.get("due"), check["due"]) for t in todos)
    rows = state["sheets"].get(_key(check.get("sheet", "")), [])
    if kind == "cell":
        index = int(check.get("row", 0))
        return 1 <= index <= len(rows) and _same(rows[index - 1].get(check.get("column")), check.get("value"))
    if kind == "row_exists":
        wanted = check.get("values") or {}
        return any(all(_same(row.get(k), v) for k, v in wanted.items()) for row in rows)
    raise ValueError(f"unknown state check {kind!r}")
