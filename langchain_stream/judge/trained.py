"""The default judge: a small linear model over hashed text features and reasoning-depth cues.

Inference needs only numpy and the standard library. The weights live in
``artifacts/trained.npz`` and the feature settings in ``artifacts/trained.json``; both are
written by :func:`langchain_stream.judge.train.train` from the shipped corpus and loaded once,
lazily, into a module-level cache (or eagerly with :func:`warm_up`).

Features (see :func:`featurize`) are built to capture *how deep the reasoning must go* rather than
*what the topic is*:

- a structural view of the query in which only function words, task verbs (prove, derive,
  design, explain, define, ...) and hedges ("should we", "which is better") are kept and every
  other word becomes a placeholder, so "what is the <w> of <w> ?" generalises across fields;
- cue lexicons in several languages, counts of constraints, numbers, options, question marks,
  code and error-trace markers, length buckets, first-person specificity ("my job", "our data");
- word unigrams/bigrams and character n-grams, hashed, with strong regularisation.

Short anaphoric follow-ups ("why?", "and for n=3?") are judged together with their context.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from langchain_stream.judge.base import Complexity, Judgment

T = TypeVar("T")

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
WEIGHTS_FILE = "trained.npz"
META_FILE = "trained.json"
CLASSES: tuple[Complexity, ...] = (Complexity.LOW, Complexity.MEDIUM, Complexity.HIGH)

# Bounded work per query: huge pastes keep their start (the question, usually) and end.
_HEAD_CHARS = 1600
_TAIL_CHARS = 400
_CUE_HEAD, _CUE_TAIL = 700, 300  # cue regexes scan at most this much (they cost ~µs per char)
_CHAR_WINDOW = 600  # character n-grams only from the first part; they are the costly family
_MAX_CONTEXT_CHARS = 1500


@dataclass(frozen=True)
class FeatureConfig:
    """Which feature families to build; saved with the weights so both sides agree."""

    n_bits: int = 18
    families: tuple[str, ...] = ("word", "bigram", "struct", "char", "hand")
    char_min: int = 2
    char_max: int = 4
    struct_max: int = 3
    family_weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        """Rebuild from the JSON form written by :meth:`to_dict`."""
        data = dict(data)
        data["families"] = tuple(data.get("families", cls.families))
        return cls(**data)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        out = asdict(self)
        out["families"] = list(self.families)
        return out


# --- text clean-up -----------------------------------------------------------------------------

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?|\d+(?:[.,:/]\d+)*|[^\w\s]")


def clean_text(text: object) -> str:
    """Make any input safe to featurise: a bounded, valid-UTF-8, control-free string."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: 4 * (_HEAD_CHARS + _TAIL_CHARS)]).decode("utf-8", "replace")
    elif not isinstance(text, str):
        text = "" if text is None else str(text)
    if len(text) > _HEAD_CHARS + _TAIL_CHARS:
        text = text[:_HEAD_CHARS] + "\n" + text[-_TAIL_CHARS:]
    # Lone surrogates cannot be encoded; replace them rather than fail.
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = unicodedata.normalize("NFKC", text)
    return _CONTROL_RE.sub(" ", text).strip()


_BINARY_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")
_BINARY_SAMPLE = 2000
_BINARY_SHARE = 0.05


def looks_binary(text: object) -> bool:
    """True for input that is mostly not text: control characters, U+FFFD, lone surrogates.

    Real queries (code and stack traces included) have next to none; decoded binary has about
    a quarter. Such input needs no reasoning, so the judge sends it to the cheapest tier.
    """
    if isinstance(text, bytes | bytearray):
        text = bytes(text[:_BINARY_SAMPLE]).decode("utf-8", "replace")
    if not isinstance(text, str) or not text:
        return False
    sample = text[:_BINARY_SAMPLE]
    return len(_BINARY_RE.findall(sample)) > _BINARY_SHARE * len(sample)


def tokenize(text: str) -> list[str]:
    """Lower-cased word, number and punctuation tokens."""
    return _TOKEN_RE.findall(text.lower())


# --- lexicons: the reasoning-depth vocabulary --------------------------------------------------

# Words kept as themselves in the structural view; everything else becomes <w> / <num>.
_STRUCT_WORDS = frozenset(
    word
    for line in (
        "a an the this that these those it its they them their there here i me my mine we us",
        "our you your he she his her who whom whose what which when where why how is are was",
        "were be been being am do does did done doing have has had having can could will",
        "would shall should may might must need needs not no yes or and but if then so",
        "because than as of in on at to for from by with without about into over under",
        "between among through per vs versus all any some each every many much more most less",
        "least few one two three only just also very too same other another else still even",
        "again please thanks thank hi hello hey ok okay bye sorry define definition meaning",
        "mean means stand stands called name named spell pronounce translate convert",
        "conversion formula symbol value unit units year date capital author wrote invented",
        "discovered founded born died true false explain explanation describe summarize",
        "summarise overview outline difference differences compare comparison contrast versus",
        "relate relationship example examples instance calculate compute solve find determine",
        "estimate show list give write implement code function script program query class",
        "steps step guide tutorial work works working prove proof derive derivation design",
        "architecture diagnose diagnosis debug troubleshoot evaluate assess critique",
        "critically analyze analyse analysis justify argue argument defend synthesize",
        "synthesise propose plan strategy recommend recommendation optimize optimise tradeoff",
        "tradeoffs trade offs choose decide decision better best worse worth consider",
        "evidence debate competing controversial contested interpretation hypotheses",
        "hypothesis investigate investigation cause causes caused causing reason reasons",
        "wrong fix fails failed failing error slow slower faster broken bug issue problem",
        "problems hang hangs constraint constraints budget requirement requirements given",
        "assume assuming suppose general generalize generalise closed form exactly rigorously",
        "rigorous legitimately conclude implications implication impossible possible whether",
        "really actually still currently expected unexpected only always never sometimes",
    )
    for word in line.split()
)

_LEXICON: dict[str, str] = {
    # LOW: lookups, definitions, conversions, pleasantries.
    "low_whatis": r"^(what|who|when|where|which)\s+(is|are|was|were|does|did)\b",
    "low_define": r"\b(define|definition of|meaning of|what does .{1,40} (mean|stand for)|stand for"
    r"|stands for|acronym|abbreviation|in one (sentence|line|word)|briefly)\b",
    "low_fact": r"\b(what year|which year|how many|how much is|who (wrote|invented|discovered|"
    r"painted|founded|composed|proposed|coined)|capital of|symbol for|formula (for|of)|"
    r"value of|unit of|boiling point|melting point|atomic number|plural of|spell)\b",
    "low_convert": r"\b(convert|in (kelvin|celsius|fahrenheit|cm|km|kg|lbs?|miles|bytes|gb)|"
    r"to (celsius|fahrenheit|kelvin|radians|km|kg|lbs?|bar|psi|pascals?|joules?))\b",
    "low_yesno": r"^(is|are|does|do|can|was|were|has|have)\s+\S+(\s+\S+){0,6}\s*\?$",
    "low_tf": r"\btrue or false\b",
    "low_imperative": r"^(name|list|state|spell|translate|round|remind me|give (me )?(a|an|the) "
    r"(synonym|antonym|word|name|number|value|formula)|tell me (the|a|which|who|what))\b",
    "low_pleasant": r"^(hi|hello|hey|thanks|thank you|thx|ok|okay|cool|bye|good (morning|night|"
    r"evening|afternoon|day)|hope you|how are you|cheers|lol|great|nice|perfect|yes|no|nope|"
    r"yep|got it|bonjour|salut|merci|hola|gracias|"
    r"hallo|danke|ciao|grazie|olá|obrigad[oa]|привет|спасибо|你好|谢谢|こんにちは|ありがとう)\b",
    # MEDIUM: textbook explanations, routine procedures, small code.
    "med_explain": r"\b(explain|describe|summari[sz]e|walk me through|what is the difference|"
    r"difference between|differences between|compare|comparison|contrast|how does|how do|"
    r"how can i|how to|how should i|in simple terms|intuition|like i'?m)\b",
    "med_proc": r"\b(calculate|compute|solve|find the|determine the|evaluate the (limit|integral)|"
    r"integrate|differentiate|convert .{1,30} to|balance the|simplify|expand|factor)\b",
    "med_code": r"\b(write (a|an|me a|some)|implement a|show me how|example of|code (for|to)|"
    r"snippet|script that|function (that|to))\b",
    "med_howto": r"\b(step by step|steps to|how do i|how can i|tips|checklist|recipe|itinerary)\b",
    # HIGH: non-standard reasoning paths.
    "high_prove": r"\b(prove|proof|show that|derive|derivation|disprove|rigorous(ly)?|"
    r"closed form|generali[sz]e|bound on|lower bound|upper bound|characteri[sz]e all|find all)\b",
    "high_design": r"\b(design|architect(ure)?|propose|plan (for|the)|strategy|build a system|"
    r"scheme|policy for|pipeline for|workflow)\b",
    "high_diag": r"\b(diagnos\w*|debug\w*|troubleshoot\w*|root cause|what('?s| is) (going on|wrong|"
    r"happening)|what could (be|explain|cause)|why (does|is|would|might) (my|our|this|it)|"
    r"figure out|investigat\w*|hangs?|deadlock\w*|keeps? (failing|crashing|dropping)|"
    r"only (when|on|in|after|with))\b",
    "high_judge": r"\b(evaluate|assess|critique|critically|weigh|argue|defend|justify|"
    r"take a position|make the case|which would you|what would you (do|pick|choose|recommend)|"
    r"should (i|we|our|my|a|the)|is it (better|worth|ethical|justified|permissible|wrong)|"
    r"trade-?offs?|pros and cons of .{1,30} for (my|our)|recommend)\b",
    # Evaluative or normative words turn a short yes/no question into a judgement call.
    "eval_words": r"\b(worth|overrated|meaningful|meaning of life|objective(ly)?|moral(ly)?|"
    r"ethical|justified|fair|better|best|right|wrong|dead|inevitable|really|truly|conscious\w*|"
    r"free will|deserve|ought|trust|honest|good for|bad for|future|possible|explained)\b",
    "high_research": r"\b(evidence|debate|competing|controvers\w*|contested|hypothes[ie]s|"
    r"interpretations?|historiograph\w*|synthesi[sz]e|state of the art|open problem|"
    r"literature|meta-analys\w*|replicat\w*|identification strategy|confound\w*)\b",
    "high_specific": r"\b(my|our) (\w+ ){0,2}(data|dataset|model|job|code|cluster|results?|study|"
    r"experiment|simulation|service|app|server|patient|survey|trial|team|company|lab|pipeline)\b",
    "high_constraints": r"\b(under|with|given|while|without|subject to) (a |the )?(budget|"
    r"constraints?|limit\w*|deadline|requirements?)\b|\bmust\b|\bat most\b|\bat least\b",
    "high_here": r"\b(here('?s| is| are)|below is|this (code|trace|output|log|error)|"
    r"the (following|numbers|timings|output|log))\b",
    # Non-English cues (a few common languages).
    "xl_low": r"(qu'est-ce|qu est-ce|qué es|que es|was ist|was bedeutet|cos'è|o que é|что такое|"
    r"什么是|是什么|とは|¿cuál es|quelle est|wer hat|qui a|quién|chi ha)",
    "xl_med": r"(explique|expliquez|explica|erkläre|erklären|spiega|explique-moi|comment|cómo|"
    r"wie funktioniert|wie |come si|como |请解释|解释|说明|教えて|объясните|как )",
    "xl_high": r"(démontre|démontrez|montrer que|beweis|demuestra|dimostra|证明|分析|评估|设计|"
    r"论证|analys|évalue|évaluez|bewerten|diskutieren|discutez|concevez|diseñ|analiza|"
    r"warum scheitert|pourquoi|por qué|warum|¿es moralmente|doit-on|sollten wir)",
}
# Matched against lower-cased text: IGNORECASE would make every pattern ~3x slower.
_LEXICON_RE = {name: re.compile(pat, re.MULTILINE) for name, pat in _LEXICON.items()}

_CODE_RE = re.compile(
    r"```|^\s{2,}\S|[{};]\s*$|\b(def|return|import|class|function|const|let|var|public|"
    r"static|void|int|printf|#include|select|from|where|lambda|async|await)\b.*[(){}=:;]",
    re.MULTILINE,
)
_TRACE_RE = re.compile(
    r"(traceback|exception|error[:\]]|\berr!|fatal|panic|segfault|core dumped|stack ?trace|"
    r"errno|exit code|line \d+|\bat [\w.$]+\(|warning:|failed|killed|oom)"
)
_OPTIONS_RE = re.compile(r"(?:^|\s|\()\(?[a-dA-D][).]\s|\b[a-d]\)")
_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)?")
_FIRST_PERSON_RE = re.compile(r"\b(i|i'm|i've|my|me|we|we're|our|us)\b")
_CONSTRAINT_RE = re.compile(
    r",|;|\band\b|\bbut\b|\bwhile\b|\bwith\b|\bwithout\b|\bonly\b|\bunless\b"
)
_SENT_RE = re.compile(r"[.!?。！？](\s|$)")
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
_NON_ASCII_LETTER_RE = re.compile(r"[^\x00-\x7f]")


def _bucket(value: int, edges: Sequence[int]) -> int:
    for i, edge in enumerate(edges):
        if value <= edge:
            return i
    return len(edges)


def _hand_features(text: str, tokens: list[str]) -> dict[str, float]:
    """Dense cues: length, structure, code/trace markers, lexicon hits (all bounded)."""
    words = [t for t in tokens if t[0].isalpha()]
    n_words = len(words)
    if len(text) > _CUE_HEAD + _CUE_TAIL:
        text = text[:_CUE_HEAD] + "\n" + text[-_CUE_TAIL:]
    low = text.lower()
    feats: dict[str, float] = {
        "bias_len": math.log1p(len(text)) / 8.0,
        "log_words": math.log1p(n_words) / 5.0,
        f"wlen={_bucket(n_words, (0, 2, 5, 10, 16, 25, 40, 70))}": 1.0,
        f"qmarks={min(text.count('?') + text.count('？'), 3)}": 1.0,
        f"sents={_bucket(len(_SENT_RE.findall(text)), (0, 1, 2, 4))}": 1.0,
        "newlines": min(text.count("\n"), 20) / 10.0,
        "numbers": min(len(_NUMBER_RE.findall(text)), 20) / 10.0,
        "constraints": min(len(_CONSTRAINT_RE.findall(low)), 20) / 10.0,
        "first_person": min(len(_FIRST_PERSON_RE.findall(low)), 10) / 5.0,
        "code": min(len(_CODE_RE.findall(low)), 10) / 5.0,
        "trace": min(len(_TRACE_RE.findall(low)), 10) / 5.0,
        "options": 1.0 if len(_OPTIONS_RE.findall(text)) >= 2 else 0.0,
        "cjk": 1.0 if _CJK_RE.search(text) else 0.0,
        "non_ascii": min(len(_NON_ASCII_LETTER_RE.findall(text)) / max(len(text), 1) * 4, 1.0),
        "ends_q": 1.0 if text.rstrip().endswith(("?", "？")) else 0.0,
    }
    # Cues mean different things in a five-word question and in a paragraph, so each cue is
    # also crossed with a coarse length band (a linear model cannot form that product itself).
    band = "s" if n_words <= 8 else ("m" if n_words <= 25 else "l")
    for name, rx in _LEXICON_RE.items():
        hits = len(rx.findall(low))
        if hits:
            feats[f"lex:{name}"] = min(hits, 3) / 2.0
            feats[f"lex:{name}&{band}"] = 1.0
    return {k: v for k, v in feats.items() if v}


def _struct_tokens(tokens: list[str]) -> list[str]:
    out = []
    for t in tokens:
        if t in _STRUCT_WORDS or not t[0].isalnum():
            out.append(t)
        elif t[0].isdigit():
            out.append("<num>")
        else:
            out.append("<w>")
    return out


def _hash(s: str, mask: int) -> int:
    return zlib.crc32(s.encode("utf-8", "replace")) & mask


def featurize(text: str, config: FeatureConfig) -> tuple[list[int], list[float]]:
    """Hashed feature indices and values for one cleaned query (see :func:`clean_text`)."""
    mask = (1 << config.n_bits) - 1
    fams = config.families
    fw = config.family_weights
    tokens = tokenize(text)
    idx: list[int] = []
    val: list[float] = []

    def add(prefix: str, items: Iterable[str]) -> None:
        uniq = set(items)
        if not uniq:
            return
        weight = fw.get(prefix, 1.0) / math.sqrt(len(uniq))
        for item in uniq:
            idx.append(_hash(prefix + item, mask))
            val.append(weight)

    words = ["<num>" if t[0].isdigit() else t for t in tokens if t[0].isalnum()]
    if "word" in fams:
        add("w:", words)
    if "bigram" in fams:
        padded = ["<s>", *words, "</s>"]
        add("b:", (f"{a} {b}" for a, b in pairwise(padded)))
    if "struct" in fams:
        st = ["<s>", *_struct_tokens(tokens), "</s>"]
        grams = []
        for n in range(1, config.struct_max + 1):
            grams.extend(" ".join(st[i : i + n]) for i in range(len(st) - n + 1))
        add("s:", grams)
        # The opening words carry most of the question's shape ("what is", "prove that").
        add("st:", (" ".join(st[: n + 1]) for n in range(1, 4)))
    if "char" in fams:
        lo, hi = config.char_min, config.char_max
        grams = []
        for word in text[:_CHAR_WINDOW].lower().split():
            w = f" {word} "
            grams.extend(w[i : i + n] for n in range(lo, hi + 1) for i in range(len(w) - n + 1))
        add("c:", grams)
    if "hand" in fams:
        scale = fw.get("h:", 1.0)
        for name, value in _hand_features(text, tokens).items():
            idx.append(_hash("h:" + name, mask))
            val.append(value * scale)
    return idx, val


# --- follow-ups --------------------------------------------------------------------------------

_ANAPHORA_RE = re.compile(
    r"^(and|but|so|then|also|what about|what if|how about|why|how come|how so|really|"
    r"explain|elaborate|more|continue|go on|can you|could you|show|prove|derive|same|ok so|"
    r"okay so|et|und|y|e|pourquoi|warum|por qué|perché|为什么|那|なぜ)\b"
    r"|\b(that|this|it|those|these|them|there|above|previous|same|he|she|his|her|its)\b",
    re.IGNORECASE,
)
_PLEASANTRY_RE = re.compile(
    r"^(ok(ay)?|thanks?( you)?( so much| a lot)?|thx|ty|cool|great|nice|perfect|got it|bye|"
    r"good (night|morning)|lol|yes|no|yep|nope|awesome|merci|danke|gracias|谢谢)[\s!.,:)]*"
    r"(thanks?( you)?|thx)?[\s!.,:)]*$",
    re.IGNORECASE,
)
_FOLLOWUP_MAX_WORDS = 12


def is_followup(query: str, context: Sequence[str]) -> bool:
    """A short query that leans on the conversation ("why?", "and for n=3?", "explain more")."""
    if not context:
        return False
    n_words = len(query.split())
    if n_words == 0 or n_words > _FOLLOWUP_MAX_WORDS or _PLEASANTRY_RE.match(query):
        return False
    return n_words <= 3 or bool(_ANAPHORA_RE.search(query))


def context_text(context: Sequence[str]) -> str:
    """The part of the context used to judge a follow-up: the last turns, bounded."""
    parts = [clean_text(c) for c in context if isinstance(c, str | bytes)][-3:]
    return "\n".join(parts)[-_MAX_CONTEXT_CHARS:]


# --- the model ---------------------------------------------------------------------------------


class LinearModel:
    """A linear model over the hashed features and, optionally, the sentence encoder's vector:
    ``logits = x · W + e · D + b``, softmax over LOW/MEDIUM/HIGH.

    ``dense_weights`` (384 × 3) are the weights ``D`` of the encoder's vector ``e``
    (:mod:`~langchain_stream.judge.encoder`); ``None`` means a hashed-features-only model.
    """

    def __init__(
        self,
        weights: np.ndarray,
        bias: np.ndarray,
        config: FeatureConfig,
        followup_beta: float = 0.0,
        class_offsets: Sequence[float] = (0.0, 0.0, 0.0),
        dense_weights: np.ndarray | None = None,
        encoder_dir: Path | None = None,
    ) -> None:
        # float16 halves memory and load time; gathered rows are widened per query.
        self.weights = np.asarray(weights, dtype=np.float16)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.config = config
        self.followup_beta = float(followup_beta)
        self.class_offsets = np.asarray(class_offsets, dtype=np.float64)
        self.dense_weights = (
            None if dense_weights is None else np.asarray(dense_weights, dtype=np.float32)
        )
        self.encoder_dir = encoder_dir
        """Where the encoder's artifacts are (default: the shipped ones)."""

    @classmethod
    def load(cls, directory: Path = ARTIFACT_DIR) -> LinearModel:
        """Read the artifacts written by training."""
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        config = FeatureConfig.from_dict(meta["features"])
        # Stored sparse (most hash buckets never fire) and uncompressed, so loading is a few ms.
        with np.load(directory / WEIGHTS_FILE) as data:
            weights = np.zeros((1 << config.n_bits, len(CLASSES)), dtype=np.float16)
            weights[data["rows"]] = data["values"]
            bias = data["bias"].astype(np.float64)
            dense = data["dense"] if "dense" in data.files else None
        return cls(
            weights,
            bias,
            config,
            followup_beta=meta.get("followup_beta", 0.0),
            class_offsets=meta.get("class_offsets", (0.0, 0.0, 0.0)),
            dense_weights=dense,
            encoder_dir=directory,
        )

    def save(self, directory: Path, extra: dict | None = None) -> None:
        """Write ``trained.npz`` (non-zero float16 rows) and ``trained.json``."""
        directory.mkdir(parents=True, exist_ok=True)
        rows = np.flatnonzero(np.abs(self.weights).sum(axis=1)).astype(np.int32)
        arrays = {"rows": rows, "values": self.weights[rows], "bias": self.bias.astype(np.float32)}
        if self.dense_weights is not None:
            arrays["dense"] = self.dense_weights
        np.savez(directory / WEIGHTS_FILE, **arrays)
        meta = {
            "classes": [c.value for c in CLASSES],
            "features": self.config.to_dict(),
            "followup_beta": self.followup_beta,
            "class_offsets": [float(x) for x in self.class_offsets],
            **(extra or {}),
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    def raw_logits(self, text: str) -> np.ndarray:
        """Logits for already-cleaned text, without follow-up handling or offsets."""
        out = self.bias.copy()
        idx, val = featurize(text, self.config)
        if idx:
            rows = self.weights[np.asarray(idx, dtype=np.intp)].astype(np.float32)
            out += np.asarray(val, dtype=np.float32) @ rows
        if self.dense_weights is not None:
            from langchain_stream.judge.encoder import shared_encoder

            out += shared_encoder(self.encoder_dir).encode(text) @ self.dense_weights
        return out

    def logits(
        self, query: str, context: Sequence[str] = (), *, cleaned: bool = False
    ) -> np.ndarray:
        """Logits for a query, mixing in the context for short follow-ups."""
        text = query if cleaned else clean_text(query)
        out = self.raw_logits(text)
        if self.followup_beta and is_followup(text, context):
            ctx = context_text(context)
            if ctx:
                ctx_logits = self.raw_logits(ctx)
                out = out + self.followup_beta * (ctx_logits - ctx_logits.mean())
        return out + self.class_offsets

    def proba(
        self, query: str, context: Sequence[str] = (), *, cleaned: bool = False
    ) -> np.ndarray:
        """Class probabilities (LOW, MEDIUM, HIGH)."""
        return softmax(self.logits(query, context, cleaned=cleaned))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities from logits (shifted by the largest, so exp cannot overflow)."""
    z = np.exp(logits - logits.max())
    return z / z.sum()


def scored_judgment(probs: np.ndarray, *, started: float, judge: str) -> Judgment:
    """The judgment whose class is the likeliest of ``probs`` (LOW, MEDIUM, HIGH), timed from
    ``started`` (a :func:`time.perf_counter` reading)."""
    return Judgment(
        complexity=CLASSES[int(np.argmax(probs))],
        scores={c: float(p) for c, p in zip(CLASSES, probs, strict=True)},
        latency_ms=(time.perf_counter() - started) * 1000.0,
        judge=judge,
    )


def judge_query(
    name: str,
    query: str,
    context: Sequence[str],
    proba: Callable[[str, Sequence[str]], np.ndarray],
) -> Judgment:
    """Judge ``query`` with ``proba`` (class probabilities of a cleaned text and its context).

    Any input gives a defined class: a context that is not a sequence of turns is ignored;
    empty, blank and binary input is LOW without calling ``proba`` (nothing to reason about).
    """
    started = time.perf_counter()
    if not isinstance(context, Sequence) or isinstance(context, str | bytes):
        context = ()
    text = clean_text(query)
    if not text or looks_binary(query):
        return scored_judgment(np.array([1.0, 0.0, 0.0]), started=started, judge=name)
    return scored_judgment(proba(text, context), started=started, judge=name)


class ArtifactCache(Generic[T]):
    """Artifacts loaded once per process per directory (default: the shipped ones).

    Loading takes tens of milliseconds and many threads may ask at once: the first loads, the
    others wait for it, and later calls take no lock.
    """

    def __init__(self, load: Callable[[Path], T]) -> None:
        self._load = load
        self._loaded: dict[Path, T] = {}
        self._lock = threading.Lock()

    def get(self, directory: Path | None = None) -> T:
        """The artifacts in ``directory``, loaded on the first call."""
        key = (directory or ARTIFACT_DIR).resolve()
        value = self._loaded.get(key)
        if value is None:
            with self._lock:
                value = self._loaded.get(key)
                if value is None:
                    value = self._load(key)
                    self._loaded[key] = value
        return value

    def clear(self) -> None:
        """Forget what was loaded, so the next call loads again."""
        with self._lock:
            self._loaded.clear()

    def __len__(self) -> int:
        return len(self._loaded)


_CACHE: ArtifactCache[LinearModel] = ArtifactCache(LinearModel.load)


def load_model(directory: Path | None = None) -> LinearModel:
    """The model in ``directory`` (default: the shipped artifacts), loaded once per process."""
    return _CACHE.get(directory)


def warm_up(directory: Path | None = None) -> None:
    """Load the artifacts (and the encoder) and run one judgment, so the first real call pays
    nothing extra."""
    TrainedJudge(directory).judge("warm up")


class TrainedJudge:
    """The default judge (name ``"trained"``): local, a few milliseconds per query (8-9 ms for
    a ten-word query on one core of a 2-core EPYC), no network.

    Args:
        artifact_dir: directory with ``trained.npz`` and ``trained.json``; defaults to the
            artifacts shipped with the package.
    """

    name = "trained"

    def __init__(self, artifact_dir: str | Path | None = None) -> None:
        self._dir = Path(artifact_dir) if artifact_dir is not None else None

    @property
    def model(self) -> LinearModel:
        """The loaded model (cached per process)."""
        return load_model(self._dir)

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        """Judge ``query``; ``context`` (previous turns, most recent last) helps follow-ups.

        Any input gives a defined class: empty or blank queries are LOW (nothing to reason
        about); bytes, lone surrogates, control characters and huge pastes are cleaned and
        bounded before featurising.
        """
        return judge_query(
            self.name,
            query,
            context,
            lambda text, turns: self.model.proba(text, turns, cleaned=True),
        )


__all__ = [
    "FeatureConfig",
    "LinearModel",
    "TrainedJudge",
    "clean_text",
    "featurize",
    "is_followup",
    "load_model",
    "looks_binary",
    "warm_up",
]
