"""Why a request with images is routed as at least MEDIUM (docs/tiers.md#images).

The judge reads the text only, and questions about an image are short: the trained judge
calls most of them LOW, though reading the image takes a larger model than the words suggest.
This measures that on typical questions researchers ask about a plot, a microscope image or a
scanned table.
"""

from __future__ import annotations

from collections import Counter

from langchain_stream.judge import Complexity, resolve_judge

IMAGE_QUESTIONS = [
    "What is this?",
    "What does this plot show?",
    "Describe this image.",
    "What's in the picture?",
    "Read the table in this scan.",
    "How many cells are in this microscope image?",
    "Is this graph increasing?",
    "Transcribe the handwriting.",
    "What is the trend in this figure?",
    "Explain this diagram.",
    "Which axis is logarithmic here?",
    "Summarize the chart.",
    "What species is this?",
    "What does the error message in this screenshot mean?",
    "Convert this scanned table to CSV.",
    "Is there anything wrong with this circuit diagram?",
    "What is the peak value in this spectrum?",
    "Identify the cell types in this histology slide.",
    "What does this sign say?",
    "Compare the two curves in the plot.",
]


def test_the_judge_calls_most_questions_about_an_image_low() -> None:
    judge = resolve_judge("trained")
    classes = Counter(judge.judge(question).complexity for question in IMAGE_QUESTIONS)
    print({c.value: classes[c] for c in Complexity}, f"of {len(IMAGE_QUESTIONS)}")
    # Without the floor, most would go to the LOW tier, which reads no images.
    assert classes[Complexity.LOW] > len(IMAGE_QUESTIONS) / 2
