"""Long conversations for ``stream bench compression``: filler turns of realistic length, facts
planted in early turns, and simple probe questions that ask for those facts later.

Filler turns are written out (a question of 30–60 words, an answer of 60–110 words, about 170
tokens a turn), so a 40-turn conversation holds about 7,000 tokens: well past the local
model's window.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

FILLER: tuple[tuple[str, str], ...] = (
    (
        "I've been trying to understand how sourdough starters work. I fed mine flour and "
        "water for a week and it bubbles, but the bread still comes out dense. What am I "
        "doing wrong?",
        "A bubbly starter is a good sign, but dense bread usually means the dough was "
        "under-proofed or the starter was used past its peak. Feed the starter and use it "
        "when it has roughly doubled, let the dough rise until it has grown by about half, "
        "and keep it somewhere warm, around 24 degrees. A longer, cooler proof in the fridge "
        "overnight also develops flavour and makes the crumb more open.",
    ),
    (
        "Can you explain what a hash table is? I keep hearing the term in my programming "
        "course and the lecture notes are not very clear about why it is fast.",
        "A hash table stores key-value pairs in an array. A hash function turns each key "
        "into an index, so finding a value takes about the same time however many entries "
        "there are. When two keys land on the same index, the table handles the collision "
        "by chaining entries in a small list or by probing for the next free slot. It stays "
        "fast as long as the table is resized before it gets too full.",
    ),
    (
        "We are repainting the living room this weekend. The walls have a few small holes "
        "from picture hooks. Do I need to prime the whole wall or just the patches?",
        "Fill the holes with spackle, let it dry, sand it flush and spot-prime just the "
        "patches; filler absorbs paint differently and would otherwise show as dull spots. "
        "You only need to prime the whole wall if you are covering a dark colour, a glossy "
        "finish or stains. Two thin coats of the finish paint will look better than one "
        "thick coat, and cutting in the edges first saves time.",
    ),
    (
        "How do noise-cancelling headphones actually work? I wore a pair on a train and the "
        "engine hum almost disappeared, but people talking were still quite easy to hear.",
        "Small microphones on the ear cups pick up the sound around you, and the electronics "
        "play an inverted copy of it through the speakers, so the two waves cancel. This "
        "works best on steady, low-frequency sounds such as engine hum, because they are "
        "predictable. Voices change quickly and contain higher frequencies, so they are "
        "harder to cancel; the padding of the ear cups blocks some of them passively instead.",
    ),
    (
        "I'm reading about the French Revolution for a book club. Why did the Estates-General "
        "of 1789 turn into such a crisis so quickly?",
        "The Estates-General had not met since 1614, and it was summoned because the crown "
        "was nearly bankrupt. The Third Estate, representing most of the population, wanted "
        "voting by head rather than by estate, which would have given it a majority. When "
        "the king resisted, its deputies declared themselves the National Assembly and swore "
        "the Tennis Court Oath, turning a fiscal meeting into a constitutional confrontation.",
    ),
    (
        "What is the difference between weather and climate? A friend keeps saying a cold "
        "week proves the planet is not warming, and I'd like a clear way to explain it.",
        "Weather is what the atmosphere does over hours and days in one place; climate is "
        "the statistics of weather over decades across a region. One cold week is a single "
        "sample from a very noisy distribution, so it says little about the trend. Climate "
        "change shows up as a shift in the averages and extremes over many years, such as "
        "more frequent record highs than record lows.",
    ),
    (
        "I want to start running but my knees ache after a few kilometres. Should I buy "
        "different shoes or is there something about my technique I should change first?",
        "Start with technique and load. Shorten your stride so your foot lands under your "
        "hips rather than far in front, and aim for a slightly higher cadence. Build up "
        "slowly, adding no more than about ten percent distance a week, and mix in strength "
        "work for your hips and thighs. Shoes matter less than people think, but a worn-out "
        "pair can contribute; if the ache persists, see a physiotherapist.",
    ),
    (
        "How does compound interest work? My bank offers a savings account with interest "
        "paid monthly and another with interest paid yearly at a slightly higher rate.",
        "With compound interest you earn interest on previous interest as well as on your "
        "deposit. Monthly compounding adds interest twelve times a year, so each payment "
        "starts earning sooner. To compare the two accounts, look at the annual equivalent "
        "rate, which folds the compounding into one yearly figure. A slightly higher yearly "
        "rate can beat a lower monthly one, so compare those equivalent rates directly.",
    ),
    (
        "Why do leaves change colour in autumn? My kids asked me on a walk today and I could "
        "only tell them it has something to do with the cold.",
        "Leaves are green because of chlorophyll, which the tree keeps rebuilding all summer. "
        "As days shorten, the tree stops making it and pulls nutrients back into the branches. "
        "The yellow and orange pigments that were there all along become visible, and some "
        "trees also make red pigments from sugars trapped in the leaf. Sunny days and cool "
        "nights produce the brightest reds.",
    ),
    (
        "I'm learning to play the guitar. My fingertips hurt after practising chords for "
        "twenty minutes. Is that normal, and how long until it stops?",
        "It is completely normal. Pressing steel strings is new work for your fingertips, "
        "and they will form calluses within two to four weeks of regular practice. Several "
        "short sessions a day are better than one long one while the skin toughens. Make "
        "sure the strings are not set too high above the frets, since high action makes "
        "every chord harder to press and hurts more.",
    ),
    (
        "Could you explain what inflation actually measures? The news says inflation is "
        "falling, yet prices in my supermarket are still going up every month.",
        "Inflation measures how fast prices rise, not how high they are. When inflation "
        "falls from eight percent to three percent, prices are still rising, just more "
        "slowly, so they never return to where they were. The official figure tracks a "
        "basket of goods and services, so your own shopping can rise faster or slower "
        "depending on what you buy; food and energy often move more than the average.",
    ),
    (
        "What should I look for when adopting a rescue dog? We have a small garden and both "
        "of us work from home most days.",
        "Think about energy level and size first: a calm adult dog often suits a small "
        "garden better than a young, high-energy breed. Ask the shelter about the dog's "
        "history with children, other pets and being left alone, and whether it is house "
        "trained. Working from home helps with settling in, but practise short absences "
        "early so the dog learns to be comfortable on its own.",
    ),
    (
        "How do vaccines train the immune system? I'd like to explain it to my nephew, who "
        "is twelve and quite curious about biology.",
        "A vaccine shows the immune system a harmless piece or copy of a germ, such as a "
        "protein from its surface. The body makes antibodies and memory cells that recognise "
        "that piece. If the real germ arrives later, the memory cells recognise it and the "
        "response starts within hours instead of days. For a twelve-year-old, a wanted "
        "poster that lets the guards recognise a thief is a good comparison.",
    ),
    (
        "I'm trying to reduce how much plastic we throw away at home. Where does most of it "
        "come from, and what are the easiest changes to make first?",
        "For most households the bulk comes from food packaging: bags, trays, bottles and "
        "wrappers. Easy first steps are reusable shopping bags and bottles, buying loose "
        "fruit and vegetables, and choosing larger containers instead of single portions. "
        "Refill shops for detergents help if there is one nearby. Keeping a week's plastic "
        "in one bag is a good way to see what to tackle next.",
    ),
    (
        "What is the best way to learn vocabulary in a new language? I study Spanish for "
        "twenty minutes a day but forget most words within a week.",
        "Spaced repetition works best: review a word just before you would forget it, at "
        "growing intervals. Flashcard apps automate the schedule. Learn words in phrases "
        "rather than alone, say them aloud, and use them in a few sentences of your own. "
        "Reading short texts and listening to podcasts at your level brings the words back "
        "in context, which is what makes them stick.",
    ),
    (
        "Our houseplants keep getting yellow leaves. They sit near a north-facing window and "
        "I water them every few days. Could that be the problem?",
        "Frequent watering is the most common cause of yellow leaves, especially in low "
        "light, where plants use water slowly and the roots stay wet. Let the top few "
        "centimetres of soil dry out before watering, and make sure the pots drain. A "
        "north-facing window gives gentle light, which suits ferns and snake plants; "
        "sun-loving plants there may stay pale whatever you do.",
    ),
    (
        "Why is the sky blue during the day but red and orange at sunset? I always assumed "
        "it was just the reflection of the oceans.",
        "It is scattering, not reflection. Air molecules scatter short, blue wavelengths of "
        "sunlight much more strongly than long, red ones, so blue light reaches your eyes "
        "from every part of the sky. At sunset the light travels through far more air, most "
        "of the blue is scattered away before it reaches you, and the remaining reds and "
        "oranges dominate.",
    ),
    (
        "I have to give a ten-minute presentation at work next month and I get very nervous "
        "speaking in front of groups. Any practical tips?",
        "Rehearse out loud several times, ideally standing up and timing yourself, so the "
        "words feel familiar. Know your first minute by heart, because nerves peak at the "
        "start. Keep slides simple, with one idea each, and speak to a few friendly faces. "
        "Slow breathing before you begin calms your heart rate. Most listeners notice your "
        "nerves far less than you feel them.",
    ),
    (
        "How do electric cars compare with petrol cars on running costs? I drive about "
        "fifteen thousand kilometres a year, mostly commuting.",
        "For commuting, electric cars are usually much cheaper to run, especially if you "
        "charge at home on an off-peak tariff: electricity per kilometre often costs a third "
        "of petrol. Maintenance is lower too, with no oil changes and less brake wear. The "
        "purchase price is still higher, so the saving depends on how long you keep the car "
        "and on insurance in your area.",
    ),
    (
        "Can you explain how a bill becomes a law in a parliamentary system? We are covering "
        "it in my evening civics class and I'm a bit lost.",
        "A bill is introduced, usually by the government, and read for the first time. At "
        "the second reading the chamber debates its principles, then a committee examines "
        "it line by line and proposes amendments. After a report stage and a third reading "
        "it passes to the other chamber, if there is one, which goes through similar steps. "
        "Once both agree, it receives formal assent and becomes law.",
    ),
    (
        "What is a good way to organise my week when I have too many small tasks? I keep "
        "getting to Friday and feeling like I did nothing important.",
        "Pick the two or three outcomes that matter most for the week on Monday, and block "
        "time for them in your calendar before anything else. Batch small tasks such as "
        "emails and errands into one or two short slots a day. Keep a single list instead "
        "of notes everywhere, and spend ten minutes on Friday reviewing what moved and what "
        "did not.",
    ),
    (
        "How do solar panels turn sunlight into electricity? We are thinking of putting some "
        "on our roof, which faces south-west.",
        "Each panel is made of silicon cells. When sunlight hits a cell, it frees electrons, "
        "and the cell's built-in electric field pushes them into a current. An inverter "
        "turns that direct current into the alternating current your home uses. A "
        "south-west roof works well, catching strong afternoon sun; shade from trees or "
        "chimneys matters more than a few degrees of orientation.",
    ),
    (
        "What causes jet lag, and is there a way to recover faster? I often travel across "
        "six or seven time zones for work.",
        "Jet lag happens because your internal clock, set by light, still runs on home time. "
        "The fastest way to shift it is light at the right moment: seek morning daylight "
        "after flying east and evening light after flying west. Start shifting your sleep "
        "by an hour a day before you travel, stay hydrated, and keep naps short. A small "
        "dose of melatonin at the new bedtime helps some people.",
    ),
    (
        "I've started keeping bees on our allotment. How many hives can a beginner "
        "reasonably manage, and when is the honey ready?",
        "Two hives is a good start: you can compare them and move frames between them if "
        "one colony struggles. Expect to inspect each hive every week or so in spring and "
        "summer. Honey is ready when the bees have capped most of the cells in a frame with "
        "wax, usually from mid-summer. Leave enough for the colony to get through winter.",
    ),
    (
        "How does a refrigerator keep food cold? It seems strange that the back of it feels "
        "warm when the inside is so cold.",
        "A refrigerator moves heat rather than making cold. A refrigerant evaporates in "
        "coils inside, absorbing heat from the food, and a compressor squeezes the vapour so "
        "it becomes hot. That hot gas releases its heat through coils at the back, where it "
        "condenses back into a liquid, and the cycle repeats. The warm back is the heat that "
        "was taken out of the inside.",
    ),
    (
        "What is the difference between a virus and a bacterium? My doctor would not give "
        "me antibiotics for a bad cold and I did not quite follow why.",
        "Bacteria are living single cells that can grow and divide on their own, and "
        "antibiotics kill them by attacking their cell walls or machinery. Viruses are much "
        "smaller and cannot reproduce by themselves; they hijack your cells to copy "
        "themselves. Colds are caused by viruses, which antibiotics do not touch, so the "
        "drugs would only risk side effects and encourage resistance.",
    ),
    (
        "I want to write a short story but I never know how to start. Do writers usually "
        "plan the whole plot first or just begin writing?",
        "Both approaches work, and many writers mix them. Some outline the main turns of the "
        "plot first; others start with a character in a situation and discover the story "
        "as they go. For a short story, a strong opening image, a character who wants "
        "something and an obstacle are enough to begin. You can always rewrite the opening "
        "once you know how the story ends.",
    ),
    (
        "How can I tell if a news article is reliable? Some of the links my relatives share "
        "look convincing but turn out to be wrong.",
        "Check who published it and whether they correct mistakes. Look for named sources, "
        "links to original documents or studies, and dates. See whether other established "
        "outlets report the same thing. Be wary of headlines designed to make you angry, "
        "images without context, and claims that only one site carries. A quick reverse "
        "image search often reveals recycled photos.",
    ),
    (
        "Why do we have leap years? I know February gets an extra day, but I have never "
        "understood why the rule skips some century years.",
        "The Earth takes about 365.2422 days to orbit the Sun. Adding a day every four years "
        "overshoots slightly, because 365.25 is a little too long. The Gregorian calendar "
        "corrects this by skipping leap years in century years unless they are divisible "
        "by 400. That is why 1900 was not a leap year but 2000 was, and the calendar stays "
        "aligned with the seasons.",
    ),
    (
        "I'd like to get better at chess. I know the rules and play online sometimes, but I "
        "lose quickly against anyone who has studied a bit.",
        "Most games at your level are decided by tactics, so solve a few puzzles every day: "
        "forks, pins and skewers. Before each move, check what your opponent threatens and "
        "which of your pieces are undefended. Learn a couple of openings by their ideas "
        "rather than memorising lines, and review your lost games to find the move where "
        "things went wrong.",
    ),
    (
        "How does a mortgage offset account work? Our bank suggested one when we asked "
        "about paying off the house faster.",
        "An offset account is a savings or everyday account linked to your mortgage. Its "
        "balance is subtracted from the loan when interest is calculated, so money sitting "
        "there reduces the interest you pay without being locked into the loan. You can "
        "still withdraw it whenever you need to. It pays off when you keep a sizeable "
        "balance there and the account fees are low.",
    ),
    (
        "What makes a good cup of coffee at home? I bought a grinder and a pour-over cone "
        "but the results are often bitter.",
        "Bitterness usually means over-extraction: the grind is too fine, the water too hot "
        "or the brew too long. Try a slightly coarser grind and water just off the boil, "
        "around 93 degrees. A ratio of about 60 grams of coffee per litre is a good start. "
        "Pour in stages and aim for a total brew time of around three minutes, then adjust "
        "one thing at a time.",
    ),
    (
        "How do glaciers move? We hiked near one last summer and the guide said it flows "
        "downhill like a very slow river.",
        "Glacier ice deforms under its own weight, creeping downhill as the ice crystals "
        "slowly slide past each other. Where meltwater reaches the bed, the whole glacier "
        "can also slide over the rock. Speeds range from a few centimetres to several metres "
        "a day. The surface is brittle, so it cracks into crevasses where the flow speeds up "
        "or bends.",
    ),
    (
        "I'm planning a vegetable garden for the first time. Which crops are the easiest for "
        "a beginner with a sunny patch of about four square metres?",
        "Salad leaves, radishes, courgettes, bush beans and cherry tomatoes are forgiving and "
        "productive. In four square metres, one courgette plant, a few tomatoes against a "
        "fence and rows of salad and beans fit well. Sow salad every couple of weeks for a "
        "steady supply. Water deeply but less often, and mulch to keep the soil moist.",
    ),
    (
        "What is the difference between RAM and storage on a computer? The shop assistant "
        "kept talking about both and I nodded along.",
        "RAM is the computer's short-term working memory: fast, and cleared when the power "
        "goes off. It holds the programs and files you are using right now, so more RAM "
        "lets you keep more open without slowing down. Storage, an SSD or hard drive, keeps "
        "your files permanently but is slower. For everyday use, 16 gigabytes of RAM and an "
        "SSD make the biggest difference.",
    ),
    (
        "How do birds know where to go when they migrate? Some of them fly thousands of "
        "kilometres and come back to the same garden.",
        "Birds combine several compasses. Many use the position of the sun and, at night, "
        "the stars; they can also sense the Earth's magnetic field. Closer to home they "
        "recognise landmarks such as coastlines and mountains, and some may use smell. Young "
        "birds of many species inherit a direction and distance to fly, and refine the "
        "route with experience.",
    ),
)


@dataclass(frozen=True)
class Fact:
    """A detail planted in an early turn, and the probe that asks for it later."""

    statement: str
    probe: str
    answer: str
    """What must be present: in the context the tier receives, and in its answer."""


FACTS: tuple[tuple[Fact, ...], ...] = (
    (
        Fact("By the way, my cat is called Biscuit.", "What is my cat called?", "Biscuit"),
        Fact("My locker code at the gym is 4821.", "What is my gym locker code?", "4821"),
        Fact("My sister Marta lives in Toronto.", "Which city does Marta live in?", "Toronto"),
        Fact("I'm flying out on flight BA2490 soon.", "What is my flight number?", "BA2490"),
        Fact("My favourite colour is teal.", "What is my favourite colour?", "teal"),
        Fact("I am allergic to peanuts.", "What am I allergic to?", "peanut"),
        Fact("Our team meeting moved to Thursday.", "When is our team meeting?", "Thursday"),
        Fact("My bike is a green Brompton.", "What bike do I have?", "Brompton"),
    ),
    (
        Fact("By the way, my dog is called Pepper.", "What is my dog called?", "Pepper"),
        Fact("My door code is 7306.", "What is my door code?", "7306"),
        Fact("My brother Tomas lives in Oslo.", "Which city does Tomas live in?", "Oslo"),
        Fact("My train ticket is for coach 12.", "Which coach is my ticket for?", "coach 12"),
        Fact("My favourite fruit is mango.", "What is my favourite fruit?", "mango"),
        Fact("I am allergic to penicillin.", "What am I allergic to?", "penicillin"),
        Fact("Our book club meets on Tuesday.", "When does our book club meet?", "Tuesday"),
        Fact("My car is a red Fiat.", "What car do I have?", "Fiat"),
    ),
)

PROBE_TURNS = (10, 20, 30, 40)
"""The user turns (1-based) that are probes."""


@dataclass(frozen=True)
class Turn:
    """One user turn: its text, the scripted answer (``None`` for a probe), and its fact."""

    user: str
    answer: str | None
    fact: Fact | None = None
    """The fact a probe asks for."""


def conversation(index: int, *, turns: int = 40, seed: int = 7) -> list[Turn]:
    """The ``index``-th benchmark conversation: facts in turns 1–8, probes at 10, 20, 30, 40.

    Each probe asks for a different fact, planted at least two turns before it.
    """
    facts = FACTS[index % len(FACTS)]
    rng = random.Random(seed + index)
    filler = list(FILLER)
    rng.shuffle(filler)
    probes = [t for t in PROBE_TURNS if t <= turns]
    asked = rng.sample(range(len(facts)), k=min(len(probes), len(facts)))
    script: list[Turn] = []
    for number in range(1, turns + 1):
        if number in probes:
            fact = facts[asked[probes.index(number)]]
            script.append(Turn(user=fact.probe, answer=None, fact=fact))
            continue
        question, answer = filler.pop() if filler else FILLER[number % len(FILLER)]
        if number <= len(facts):
            # The fact sits inside an ordinary question, the way people mention such things.
            first, *rest = re.split(r"(?<=[.!?])\s+", question, maxsplit=1)
            question = " ".join([first, facts[number - 1].statement, *rest])
        script.append(Turn(user=question, answer=answer))
    return script
