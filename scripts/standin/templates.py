"""Generated, gender-balanced sentences for the stand-in's training corpus.

Every sentence ties a pronoun (subject, object, possessive or reflexive) to a
person whose gender is fixed by a first name, a gendered noun or a title. The
generator is seeded, so the corpus is reproducible. Sentences are written from
templates below (ours); none is taken from an evaluation set.
"""
from __future__ import annotations

import random
import re

MALE_NAMES = """James John Robert Michael William David Richard Joseph Thomas Charles Daniel
Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Edward
Ronald Timothy Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin
Scott Brandon Benjamin Samuel Frank Gregory Raymond Alexander Patrick Jack Dennis Jerry
Tyler Aaron Henry Adam Douglas Nathan Peter Zachary Kyle Walter Harold Jeremy Ethan Carl
Keith Roger Gerald Christian Terry Sean Arthur Austin Noah Lawrence Jesse Joe Bryan Billy
Jordan Albert Dylan Bruce Willie Gabriel Alan Juan Logan Wayne Ralph Roy Eugene Randy
Vincent Russell Louis Philip Bobby Johnny Bradley Oliver Harry Oscar Leo Hugo Felix Max
Simon Martin Colin Neil Ian Victor Luke Owen Liam Lucas Mason Carlos Ahmed Omar Ivan Pablo
Marco Hans Pierre Kenji Ravi Tom Ben Sam Tim Dan Ted Fred Jim Bob Bill Mike Nick Alex Chris""".split()

FEMALE_NAMES = """Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Nancy
Lisa Betty Margaret Sandra Ashley Kimberly Emily Donna Michelle Dorothy Carol Amanda
Melissa Deborah Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Shirley Angela Helen
Anna Brenda Pamela Nicole Emma Samantha Katherine Christine Debra Rachel Catherine Carolyn
Janet Ruth Maria Heather Diane Virginia Julie Joyce Victoria Olivia Kelly Christina Lauren
Joan Evelyn Judith Megan Cheryl Andrea Hannah Martha Jacqueline Frances Gloria Ann Teresa
Kathryn Sara Janice Jean Alice Madison Doris Abigail Julia Judy Grace Denise Amber Marilyn
Beverly Danielle Theresa Sophia Marie Diana Brittany Natalie Isabella Charlotte Rose
Alexis Kayla Lucy Chloe Zoe Mia Ella Ava Lily Sofia Clara Eva Nina Ruby Ivy Iris Vera
Leila Fatima Priya Yuki Mei Ingrid Greta Elena Carmen Rosa Lucia Anne Jane Kate Beth Jill
Meg Amy Sue Liz Jo Pam Eve Tina Molly Holly""".split()

SURNAMES = """Smith Johnson Brown Taylor Miller Wilson Moore Anderson Thomas Jackson White Harris
Martin Thompson Clark Lewis Walker Hall Allen Young King Wright Scott Green Baker Adams Nelson
Hill Campbell Mitchell Roberts Carter Phillips Evans Turner Parker Collins Edwards Stewart
Morris Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey Bell Kelly Howard Ward Cox
Richardson Wood Watson Brooks Bennett Gray Hughes Price Sanders Myers Long Ross Foster""".split()

# (male, female) nouns that fix a referent's gender.
GENDERED_NOUNS = [
    ("man", "woman"), ("boy", "girl"), ("father", "mother"), ("brother", "sister"),
    ("son", "daughter"), ("uncle", "aunt"), ("husband", "wife"), ("king", "queen"),
    ("prince", "princess"), ("grandfather", "grandmother"), ("nephew", "niece"),
    ("gentleman", "lady"), ("actor", "actress"), ("waiter", "waitress"),
    ("policeman", "policewoman"), ("monk", "nun"), ("groom", "bride"),
    ("boyfriend", "girlfriend"), ("landlord", "landlady"), ("duke", "duchess"),
    ("emperor", "empress"), ("host", "hostess"), ("grandson", "granddaughter"),
    ("stepfather", "stepmother"), ("businessman", "businesswoman"),
    ("salesman", "saleswoman"), ("chairman", "chairwoman"), ("dad", "mom"),
    ("schoolboy", "schoolgirl"), ("lord", "lady"), ("sir", "madam"),
]
TITLES = (["Mr."], ["Mrs.", "Ms.", "Miss"])
PRONOUNS = {  # s: subject, o: object, p: possessive, r: reflexive
    "m": {"s": "he", "o": "him", "p": "his", "r": "himself"},
    "f": {"s": "she", "o": "her", "p": "her", "r": "herself"},
}

FILL = {
    "item": "keys wallet phone umbrella book notebook jacket laptop ring watch bag camera glasses hat bike coat scarf passport ticket guitar pen letter diary".split(),
    "place": "market station library park office museum beach bakery airport hospital cinema church school garden harbour restaurant gym concert party wedding".split(),
    "task": "homework project essay report garden move taxes presentation application thesis kitchen painting speech".split(),
    "quality": ["hard work", "patience", "kindness", "help", "advice", "honesty", "courage", "support", "generosity", "time"],
    "relative": "mother father sister brother aunt uncle cousin grandmother grandfather friend neighbour boss teacher son daughter".split(),
    "gift": ["scarf", "book", "cake", "watch", "plant", "painting", "bicycle", "puppy", "necklace", "sweater"],
    "job": ["nurse", "doctor", "teacher", "lawyer", "baker", "pilot", "farmer", "writer", "chef", "dentist", "engineer", "painter", "driver", "librarian"],
    "city": "Paris London Boston Rome Berlin Tokyo Madrid Chicago Dublin Vienna Oslo Lisbon Toronto Sydney".split(),
    "adj": "happy tired busy nervous proud excited worried calm late sick lucky ready".split(),
    "skill": ["swim", "drive", "cook", "play chess", "ride a horse", "sew", "dance", "paint", "fish", "knit"],
    "time": ["yesterday", "this morning", "last week", "on Monday", "after lunch", "last night", "in the spring"],
    "vpast": ["made dinner", "went to bed", "read the paper", "called a friend", "took a bath", "fed the cat", "watched a film", "wrote a letter"],
    "ving": ["cooking", "running", "climbing a ladder", "chopping wood", "playing football", "moving a sofa", "skiing", "gardening"],
}

ONE = [
    "{A} lost {A.p} {item} on the way to the {place}.",
    "{A} said that {A.s} would come to the {place} tomorrow.",
    "When {A} got home, {A.s} {vpast}.",
    "{A} called {A.p} {relative} to say that {A.s} was {adj}.",
    "Everyone at the {place} likes {A} because {A.s} is always kind.",
    "I saw {A} at the {place} and waved to {A.o}.",
    "{A} was {adj}, so we drove {A.o} home.",
    "We gave {A} a {gift} for {A.p} birthday, and {A.s} loved it.",
    "{A} finished {A.p} {task} early and went to the {place}.",
    "The company hired {A} last year, and {A.s} has been {adj} ever since.",
    "Nobody had heard from {A} in weeks, so we sent {A.o} a letter.",
    "{A} told us that {A.p} {relative} had moved to {city}.",
    "After the meeting, {A} packed {A.p} bag and left.",
    "If you see {A}, please tell {A.o} that the car is ready.",
    "{A} hurt {A.r} while {ving}.",
    "{A} always keeps {A.p} {item} in the drawer.",
    "{A} is coming over tonight, and I promised to cook for {A.o}.",
    "{A} is a {job}, and {A.s} works near the {place}.",
    "Ask {A}; {A.s} knows the way to the {place}.",
    "{A} smiled when the children thanked {A.o}.",
    "The doctor told {A} that {A.s} needed more rest.",
    "{A} opened {A.p} {item} case and found a note inside.",
    "When the storm started, {A} grabbed {A.p} umbrella and ran.",
    "{A} missed the train, so {A.s} had to wait an hour.",
    "{A} is very proud of {A.p} {relative}.",
    "The teacher asked {A} to read {A.p} {task} aloud.",
    "People often ask {A} where {A.s} grew up.",
    "{A} has a dog, and it follows {A.o} everywhere.",
    "I borrowed {A}'s {item} and gave it back to {A.o} {time}.",
    "{A} wrote to {A.p} {relative} {time}.",
    "{A} moved to {city} last year. We miss {A.o} a lot.",
    "I ran into {A} {time}. {A.s} looked {adj}.",
    "{A} sings in a choir. {A.p} voice is lovely.",
    "{A} could not find {A.p} {item}, so {A.s} asked for help.",
    "The crowd cheered for {A} when {A.s} crossed the finish line.",
    "{A} bought {A.r} a new {item} {time}.",
    "We threw a party for {A} because {A.s} had passed {A.p} exams.",
    "Before {A} left for {city}, {A.s} gave away {A.p} old {item}.",
    "{A} practised every day, and {A.p} {relative} was impressed.",
    "The police stopped {A} and asked {A.o} for {A.p} licence.",
    "{A} woke up late and forgot {A.p} {item} at home.",
    "It was {A}'s turn, so we handed the ball to {A.o}.",
    "{A} laughed so hard that {A.s} nearly fell off {A.p} chair.",
    "Because {A} was {adj}, {A.s} stayed in bed all day.",
    "{A} took {A.p} {relative} to the {place} {time}.",
    "The letter was addressed to {A}, so I gave it to {A.o}.",
    "{A} has lived in {city} since {A.s} was a child.",
    "We asked {A} to join us, but {A.s} was too {adj}.",
    "{A} cleaned {A.p} room and then {vpast}.",
    "I have known {A} for years, and I trust {A.o} completely.",
]

TWO = [
    "{A} helped {B} with {B.p} {task}, and {B.s} thanked {A.o} for {A.p} {quality}.",
    "{A} met {B} at the {place}, and {A.s} hugged {B.o} before {B.s} left.",
    "{A} lent {B} {A.p} {item}, and {B.s} promised to return it to {A.o} soon.",
    "{A} asked {B} for {B.p} number, and {B.s} gave it to {A.o}.",
    "{A} visited {B} in the hospital and brought {B.o} flowers.",
    "When {A} called, {B} told {A.o} that {B.s} was busy.",
    "{A} drove {B} to the {place} because {B.p} car had broken down.",
    "{B} was grateful when {A} found {B.p} {item} and returned it to {B.o}.",
    "{A} sent {B} a message, but {B.s} never answered {A.o}.",
    "{A} taught {B} how to {skill}, and {B.s} still thanks {A.o} for it.",
    "{A} congratulated {B} on {B.p} new job.",
    "{A} and {B} went to the {place}, where {A.s} bought {B.o} a {gift}.",
    "{A} waited for {B}, and when {B.s} came out, {A.s} waved to {B.o}.",
    "{A} forgave {B} for forgetting {A.p} birthday.",
    "{A} introduced {B} to {A.p} {relative}.",
    "{B} cried when {A} read {B.o} the letter from {B.p} {relative}.",
    "{A} told {B} that {A.s} loved {B.o}.",
    "{A} gave {B} {A.p} old {item} because {B.s} needed one.",
    "After {A} fixed {B}'s {item}, {B.s} paid {A.o} twenty dollars.",
    "{A} carried {B}'s bags to {B.p} room, and {B.s} thanked {A.o}.",
    "{A} watched {B} dance and clapped for {B.o}.",
    "{B} called {A} to ask whether {A.s} could pick {B.o} up.",
    "{A} praised {B} for {B.p} {quality}, and {B.s} blushed.",
    "{A} spotted {B} in the crowd and shouted {B.p} name.",
    "{A} phoned {B} to wish {B.o} a happy birthday.",
    "{A} invited {B} to dinner, and {B.s} brought {A.o} a cake.",
    "{A} asked {B} to marry {A.o}, and {B.s} said yes.",
    "{B} thanked {A} for driving {B.o} home.",
    "{A} warned {B} that {B.p} {item} was about to fall.",
    "{A} missed {B} so much that {A.s} wrote to {B.o} every day.",
    "{B} lost {B.p} {item}, so {A} helped {B.o} look for it.",
    "{A} beat {B} at chess, and {B.s} asked {A.o} for a rematch.",
    "{B} was {adj}, so {A} made {B.o} a cup of tea.",
    "{A} showed {B} {A.p} new {item}, and {B.s} liked it.",
    "{A} interviewed {B} about {B.p} {task}.",
    "{A} and {B} argued, but later {A.s} apologised to {B.o}.",
    "{B} needed a ride, so {A} offered to take {B.o} to the {place}.",
    "{A} admired {B} for {B.p} {quality} and told {B.o} so.",
    "{A} hired {B} because {B.p} references were excellent.",
    "{B} smiled at {A}, and {A.s} smiled back at {B.o}.",
    "{A} wrote {B} a poem, and {B.s} kept it in {B.p} {item} case.",
    "{A} heard {B} singing and asked {B.o} to sing again.",
    "{A} sat next to {B} and asked about {B.p} {relative}.",
    "{A} recognised {B} from {B.p} photo and walked up to {B.o}.",
    "When {B} fell, {A} helped {B.o} up and checked {B.p} knee.",
    "{A} reminded {B} that {B.s} had promised to call {A.o}.",
    "{A} surprised {B} with a {gift}, and {B.s} hugged {A.o}.",
    "{A} told {B} a joke, and {B.s} laughed at {A.o}.",
    "{A} paid for {B}'s lunch, so {B.s} owes {A.o} a favour.",
    "{B} asked {A} for advice, and {A.s} gave {B.o} {A.p} honest opinion.",
    "{A} and {B} had a fight, but in the end {A.s} forgave {B.o} and {B.s} forgave {A.o}.",
    "{A} picked {B} up from the {place}; {A.s} hugged {B.o}, and {B.s} thanked {A.o}.",
    "{B} had not seen {A} for years, so when {A.s} called {B.o}, {B.s} invited {A.o} over.",
    "{A} and {B} met at the {place}, and {A.s} kissed {B.o} before {B.s} left.",
    "{A} wrote to {B} every week, and {B.s} always answered {A.o}.",
    "When {B} saw {A}, {B.s} waved at {A.o} and {A.s} waved back at {B.o}.",
    "{A} and {B} are neighbours; {A.s} helps {B.o} in the garden and {B.s} cooks for {A.o}.",
    "{A} owed {B} money, so {A.s} paid {B.o} back {time}.",
    "{B} trusted {A}, and {A.s} never let {B.o} down.",
    "After the concert, {A} drove {B} home and {B.s} thanked {A.o} warmly.",
    "{A} sat beside {B}; {A.s} told {B.o} a story and {B.s} listened to {A.o} quietly.",
    "{A} annoyed {B}, so {B.s} ignored {A.o} for the rest of the day.",
]


def _person(rng: random.Random, g: str) -> str:
    r = rng.random()
    if r < 0.6:
        return rng.choice(MALE_NAMES if g == "m" else FEMALE_NAMES)
    if r < 0.9:
        noun = rng.choice(GENDERED_NOUNS)[0 if g == "m" else 1]
        det = rng.choice(["the", "the", "my", "our", "a", "your"])
        if det == "a" and noun[0] in "aeiou":
            det = "an"
        return f"{det} {noun}"
    title = rng.choice(TITLES[0 if g == "m" else 1])
    return f"{title} {rng.choice(SURNAMES)}"


_SLOT = re.compile(r"\{(A|B)(?:\.(s|o|p|r))?\}|\{(\w+)\}")


def render(template: str, rng: random.Random, ga: str, gb: str) -> str:
    people = {"A": (_person(rng, ga), ga), "B": (_person(rng, gb), gb)}
    if people["A"][0] == people["B"][0]:
        people["B"] = (_person(rng, gb), gb)

    def sub(m: re.Match) -> str:
        who, form, fill = m.groups()
        if fill:
            return rng.choice(FILL[fill])
        name, g = people[who]
        return PRONOUNS[g][form] if form else name

    text = _SLOT.sub(sub, template)
    # capitalise sentence starts ("the boy ..." at the start, "his voice" after ". ")
    text = re.sub(r"(^|[.;!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    return text


def generate(n: int, seed: int) -> list[str]:
    """`n` sentences, half with a female and half with a male pronoun referent."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.4:
            g = "mf"[i % 2]
            out.append(render(rng.choice(ONE), rng, g, g))
        else:
            ga, gb = rng.choice([("m", "f"), ("f", "m"), ("m", "f"), ("f", "m"), ("m", "m"), ("f", "f")])
            out.append(render(rng.choice(TWO), rng, ga, gb))
    return out


if __name__ == "__main__":
    for s in generate(20, 0):
        print(s)


# --- Two people of opposite gender, then "he <verb> her" / "she <verb> him" ----------------------
# In a clause like "he hugged [MASK]", the object cannot be the subject (that would be "himself"),
# so it is the other person: the model has to track both referents. Added after the step-600
# evaluation showed the stand-in answering "him" at such object slots.
INTROS = [
    "{A} and {B} met at the {place}", "{A} picked {B} up from the {place}", "{B} visited {A} {time}",
    "{A} and {B} argued all evening", "{A} waited for {B} at the {place}", "{B} ran into {A} at the {place}",
    "{A} and {B} have been friends for years", "{A} sat next to {B} at the {place}",
    "{B} had not seen {A} in months", "{A} and {B} worked late at the office", "{A} met {B} for lunch",
    "{B} and {A} walked home together", "{A} called {B} {time}", "{A} and {B} danced at the wedding",
]
OBJ_VERBS = ["hugged", "kissed", "thanked", "called", "helped", "visited", "forgave", "invited", "drove",
             "warned", "greeted", "told", "asked", "followed", "trusted", "paid", "ignored", "teased",
             "praised", "congratulated", "missed", "texted", "phoned", "comforted", "reassured", "taught",
             "surprised", "recognised", "thanked", "believed", "blamed", "kissed", "hugged", "called"]
TAILS = ["", "", " warmly", " at the gate", " last night", " again", " home", " for the flowers",
         " about the plan", " before leaving", " right away", " a second time"]
JOINS = [", and ", "; ", ". Later ", ", but in the end ", ", so ", " and then "]


def generate_binding(n: int, seed: int) -> list[str]:
    """`n` sentences in which a subject pronoun acts on the other (opposite-gender) person."""
    rng = random.Random(seed + 1000)
    out = []
    for i in range(n):
        ga, gb = ("m", "f") if i % 2 else ("f", "m")
        x, y = ("A", "B") if rng.random() < 0.5 else ("B", "A")
        clause = "{%s.s} %s {%s.o}%s" % (x, rng.choice(OBJ_VERBS), y, rng.choice(TAILS))
        if rng.random() < 0.6:
            clause += " and {%s.s} %s {%s.o}%s" % (y, rng.choice(OBJ_VERBS), x, rng.choice(TAILS))
        out.append(render(rng.choice(INTROS) + rng.choice(JOINS) + clause + ".", rng, ga, gb))
    return out
