"""Long multi-session conversations with labelled evidence, for ``bench_recall.py``.

    python bench/recall_data.py > bench/recall_conversations.jsonl   # what is committed

Each conversation is one user talking with an assistant over many sessions. The user mentions
facts about their life (a pet, a trip, a job, an allergy, ...) in passing, in one of several
phrasings, among small talk, other people's news and the assistant's replies; some facts change
later. Each question is one the user could ask much later ("What did I name the puppy we
adopted?"), with the turn or turns that answer it labelled as its evidence. The words of a
question and of its evidence differ as they do in real talk (``adopted``/``adopt``,
``travelling``/``trip``), and other turns share some of the question's words.

A line is a conversation: ``{"id", "turns": [{"id", "session", "speaker", "text"}],
"questions": [{"question", "evidence": [turn id, ...]}]}``. The generator is seeded; the
committed file is its output.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Callable
from typing import Any

NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Elif",
    "Farid",
    "Greta",
    "Hiro",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Marco",
    "Nadia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
]
PET_NAMES = [
    "Biscuit",
    "Luna",
    "Mochi",
    "Pepper",
    "Ziggy",
    "Nala",
    "Bruno",
    "Olive",
    "Tofu",
    "Pickles",
    "Juniper",
    "Waffles",
]
PETS = ["dog", "cat", "parrot", "rabbit", "hamster", "tortoise"]
YOUNG = {
    "dog": "puppy",
    "cat": "kitten",
    "parrot": "chick",
    "rabbit": "bunny",
    "hamster": "hamster",
    "tortoise": "tortoise",
}
CITIES = [
    "Lisbon",
    "Porto",
    "Krakow",
    "Osaka",
    "Valparaiso",
    "Tbilisi",
    "Bergen",
    "Cusco",
    "Marrakesh",
    "Hanoi",
    "Tallinn",
    "Ljubljana",
    "Cork",
    "Bologna",
    "Quebec",
]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
JOBS = [
    "nurse",
    "architect",
    "electrician",
    "pharmacist",
    "translator",
    "welder",
    "accountant",
    "paramedic",
    "librarian",
    "carpenter",
    "data analyst",
    "chef",
]
COMPANIES = [
    "Northwind",
    "Bluefin Labs",
    "Harbor Health",
    "Copperleaf",
    "Greystone",
    "Tidewater",
    "Sunmill",
    "Orchard Systems",
]
INSTRUMENTS = [
    "cello",
    "ukulele",
    "saxophone",
    "harmonica",
    "banjo",
    "violin",
    "drums",
    "accordion",
]
ALLERGENS = ["peanuts", "shellfish", "sesame", "kiwi", "almonds", "strawberries", "eggs"]
RELATIONS = ["sister", "brother", "cousin"]
CUISINES = [
    "Ethiopian",
    "Georgian",
    "Peruvian",
    "Korean",
    "Lebanese",
    "Vietnamese",
    "Sicilian",
    "Oaxacan",
]
CARS = ["Volvo", "Subaru", "Fiat", "Skoda", "Mazda", "Renault"]
COLORS = ["red", "green", "silver", "yellow", "blue", "white"]
BOOKS = [
    ("The Left Hand of Darkness", "Ursula Le Guin"),
    ("Piranesi", "Susanna Clarke"),
    ("Middlemarch", "George Eliot"),
    ("Station Eleven", "Emily St. John Mandel"),
    ("The Remains of the Day", "Kazuo Ishiguro"),
    ("Beloved", "Toni Morrison"),
    ("Dune", "Frank Herbert"),
    ("Pachinko", "Min Jin Lee"),
]
RACES = ["half marathon", "triathlon", "10k trail run", "century bike ride", "swim across the lake"]
DISHES = [
    "a lentil curry",
    "sourdough bread",
    "dumplings",
    "paella",
    "ramen from scratch",
    "tamales",
    "a lemon tart",
]


def _facts(rng: random.Random, me: str) -> list[dict[str, Any]]:
    """One user's facts: for each, the turns that state it and the questions it answers."""
    pick = rng.choice
    pet, pet_name = pick(PETS), pick(PET_NAMES)
    home, trip = rng.sample(CITIES, 2)
    month = pick(MONTHS)
    job, company = pick(JOBS), pick(COMPANIES)
    new_job, new_company = pick([j for j in JOBS if j != job]), pick(COMPANIES)
    instrument, allergen = pick(INSTRUMENTS), pick(ALLERGENS)
    relation, sibling, sibling_job = pick(RELATIONS), pick(NAMES), pick(JOBS)
    cuisine, car, color = pick(CUISINES), pick(CARS), pick(COLORS)
    (book, author), race, race_month = pick(BOOKS), pick(RACES), pick(MONTHS)
    partner, partner_job, dish = pick([n for n in NAMES if n != me]), pick(JOBS), pick(DISHES)
    day = rng.randint(1, 28)
    return [
        {
            "say": [
                pick(
                    [
                        f"We finally adopted a {YOUNG[pet]}! We're calling her {pet_name}.",
                        f"Big news, we adopted a little {pet} last weekend and named her "
                        f"{pet_name}.",
                    ]
                ),
                pick(
                    [
                        f"{pet_name} chewed through my charger cable again, that {pet} is a "
                        "menace.",
                        f"Had to take {pet_name} to the vet, she's been off her food.",
                    ]
                ),
            ],
            "ask": [
                f"What did I name the {YOUNG[pet]} we adopted?",
                "What is my pet called?",
                f"What kind of animal is {pet_name}?",
            ],
        },
        {
            "say": [
                pick(
                    [
                        f"I grew up in {home}, by the old harbour.",
                        f"Growing up in {home} we spent every summer outdoors.",
                        f"My whole family still lives back in {home}.",
                    ]
                )
            ],
            "ask": [
                "Where did I grow up?",
                "Which city is my hometown?",
                "Where does my family live?",
            ],
        },
        {
            "say": [
                pick(
                    [
                        f"I work as a {job} at {company}, the shifts are long.",
                        f"Being a {job} at {company} is exhausting some weeks.",
                    ]
                )
            ],
            "later": [
                pick(
                    [
                        f"I handed in my notice! Starting as a {new_job} at {new_company} "
                        "next month.",
                        f"New chapter: I accepted an offer to work as a "
                        f"{new_job} for {new_company}.",
                    ]
                )
            ],
            "ask": ["What do I do for work now?", "Which company am I working for now?"],
            "ask_old": ["What was my job before I switched?"],
        },
        {
            "say": [
                pick(
                    [
                        f"I've started learning to play the {instrument}, my fingers hurt.",
                        f"Practiced the {instrument} for two hours tonight, getting better.",
                    ]
                ),
                pick(
                    [
                        f"My {instrument} teacher says my timing has improved.",
                        f"Bought new strings and a stand for the {instrument}.",
                    ]
                ),
            ],
            "ask": [
                "What instrument am I learning to play?",
                f"How is my {instrument} practice going?",
            ],
        },
        {
            "say": [
                pick(
                    [
                        f"We're travelling to {trip} in {month}, I can't wait.",
                        f"Booked the flights! {trip} in {month}, just the two of us.",
                        f"I'm planning a trip to {trip} for {month}.",
                    ]
                )
            ],
            "ask": [f"Where am I going on my trip in {month}?", f"When do I travel to {trip}?"],
        },
        {
            "say": [
                pick(
                    [
                        f"I'm allergic to {allergen}, so I always check the labels.",
                        f"Careful with the dessert, I have an allergy to {allergen}.",
                        f"Ended up at the clinic last night, turns out I react badly to "
                        f"{allergen}.",
                    ]
                )
            ],
            "ask": ["What am I allergic to?", "Which food gives me an allergic reaction?"],
        },
        {
            "say": [
                pick(
                    [
                        f"My {relation} {sibling} just qualified as a {sibling_job}.",
                        f"{sibling}, my {relation}, is working as a {sibling_job} these days.",
                    ]
                )
            ],
            "ask": [f"What is my {relation}'s name?", f"What does my {relation} do for a living?"],
        },
        {
            "say": [
                pick(
                    [
                        f"{cuisine} food is my absolute favourite, I could eat it every day.",
                        f"We found an amazing {cuisine} restaurant, best meal of the year.",
                    ]
                )
            ],
            "ask": ["What is my favourite cuisine?", "Which restaurant did we love?"],
        },
        {
            "say": [
                pick(
                    [
                        f"My old {color} {car} broke down on the motorway again.",
                        f"I still drive the {color} {car} I bought when I was twenty.",
                    ]
                )
            ],
            "ask": ["What car do I drive?", "What colour is my car?"],
        },
        {
            "say": [
                pick(
                    [
                        f"Just finished reading {book} by {author}, I loved it.",
                        f"Stayed up all night finishing {book}. {author} is brilliant.",
                    ]
                )
            ],
            "ask": ["Which book did I read recently?", "Who wrote the book I finished?"],
        },
        {
            "say": [
                pick(
                    [
                        f"I signed up for a {race} in {race_month}, training starts now.",
                        f"Training for the {race} is going well, only {race_month} to go.",
                    ]
                )
            ],
            "ask": ["What race am I training for?", "When is my race?"],
        },
        {
            "say": [
                pick(
                    [
                        f"My partner {partner} works night shifts as a {partner_job}.",
                        f"{partner} and I have been together six years now.",
                    ]
                )
            ],
            "ask": ["What is my partner's name?", "Who am I in a relationship with?"],
        },
        {
            "say": [
                pick(
                    [
                        f"I've been learning to cook {dish}, it took three attempts.",
                        f"Cooked {dish} for the first time tonight, turned out great.",
                    ]
                )
            ],
            "ask": ["What have I been learning to cook?", "What dish did I make?"],
        },
        {
            "say": [
                pick(
                    [
                        f"My birthday is on the {day}th of {month}.",
                        f"Turning thirty on {month} {day}, please plan something small.",
                    ]
                )
            ],
            "ask": ["When is my birthday?", "What date is my birthday?"],
        },
    ]


SMALL_TALK = [
    "Morning! Slept badly, the neighbours were loud again.",
    "Work was a lot today.",
    "It rained the whole day, I stayed in.",
    "Do you think I should take a day off?",
    "I need to organise my week better.",
    "Watched a documentary about octopuses last night.",
    "The bus was late again, I missed my first meeting.",
    "Can you remind me to call the bank?",
    "What's a good way to stop procrastinating?",
    "I'm so tired, let's keep it short today.",
    "My friend's kid started school this week.",
    "Thinking of repainting the kitchen.",
    "Any tips for sleeping better?",
    "We had friends over for dinner on Saturday.",
    "I cleaned out the garage, found my old bike.",
    "Traffic was terrible on the way home.",
    "My neighbour's dog barked all night.",
    "A colleague's cat knocked her laptop off the desk.",
    "My friend is travelling around Asia for a year.",
    "Someone at work is allergic to cats.",
    "My cousin's band is playing downtown on Friday.",
    "The new cafe near work does good coffee.",
]
REPLIES = [
    "That sounds like a lot, how are you feeling about it?",
    "I'll keep that in mind.",
    "Noted! Anything else on your plate today?",
    "That's lovely to hear.",
    "Want me to set a reminder for that?",
    "Sounds like a good plan.",
    "Take it easy, you deserve a rest.",
    "Interesting! Tell me more when you have time.",
]


def echo(text: str, rng: random.Random) -> str:
    """An assistant's answer to a user turn: it often picks up one of its words."""
    words = [w.strip(".,!?'") for w in text.split() if len(w) > 4 and w[0].islower()]
    if words and rng.random() < 0.6:
        return rng.choice(
            [
                f"Oh, {rng.choice(words)}? Tell me more!",
                f"Noted about the {rng.choice(words)}.",
                f"That's great news about the {rng.choice(words)}!",
            ]
        )
    return rng.choice(REPLIES)


def conversation(number: int, rng: random.Random, sessions: int = 12) -> dict[str, Any]:
    me = NAMES[number % len(NAMES)]
    facts = _facts(rng, me)
    rng.shuffle(facts)
    turns: list[dict[str, Any]] = []
    plan: list[list[tuple[str, dict[str, Any], str]]] = [[] for _ in range(sessions)]
    for fact in facts:  # each statement lands in a session of its own, in order
        first = rng.randrange(sessions // 2)
        end = sessions - 1 if "later" in fact else sessions  # a change comes in a later one
        spots = sorted(rng.sample(range(first, end), len(fact["say"])))
        for spot, text in zip(spots, fact["say"], strict=True):
            plan[spot].append(("say", fact, text))
        for text in fact.get("later", []):
            plan[rng.randrange(max(spots) + 1, sessions)].append(("later", fact, text))
    evidence: dict[int, dict[str, list[str]]] = {}
    for session, items in enumerate(plan):
        talk: list[tuple[str, dict[str, Any] | None, str]] = [
            ("small", None, line) for line in rng.sample(SMALL_TALK, rng.randint(4, 7))
        ]
        talk += [(kind, fact, text) for kind, fact, text in items]
        rng.shuffle(talk)
        for kind, fact, text in talk:
            turn_id = f"c{number}:s{session}:t{len(turns)}"
            turns.append({"id": turn_id, "session": session, "speaker": me, "text": text})
            if fact is not None:
                evidence.setdefault(id(fact), {"say": [], "later": []})[kind].append(turn_id)
            reply_id = f"c{number}:s{session}:t{len(turns)}"
            turns.append({"id": reply_id, "session": session, "speaker": "assistant",
                          "text": echo(text, rng)})  # fmt: skip
    questions = []
    for fact in facts:
        found = evidence[id(fact)]
        current = found["later"] or found["say"]
        questions += [{"question": q, "evidence": current} for q in fact["ask"]]
        questions += [{"question": q, "evidence": found["say"]} for q in fact.get("ask_old", [])]
    return {"id": f"c{number}", "turns": turns, "questions": questions}


def conversations(count: int = 16, seed: int = 2026) -> list[dict[str, Any]]:
    """``count`` conversations, the same for the same seed."""
    rng = random.Random(seed)
    return [conversation(number, rng) for number in range(count)]


def main(write: Callable[[str], Any] = sys.stdout.write) -> None:
    for found in conversations():
        write(json.dumps(found, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
