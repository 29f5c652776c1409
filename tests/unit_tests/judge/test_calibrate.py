"""Calibration: fitting offsets to a target share, applying them, saving them in the config
file, and the judge resolution that picks them up."""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

from langchain_stream.config import Settings, get_settings
from langchain_stream.errors import ConfigurationError
from langchain_stream.judge import resolve_judge
from langchain_stream.judge.base import Complexity, Judgment
from langchain_stream.judge.calibrate import (
    CalibratedJudge,
    Calibration,
    EnvironmentOverrideWarning,
    calibrate,
    calibrate_file,
    fit_offsets,
    hard_shares,
    load_queries,
    log_scores,
    offsets_from_mapping,
    parse_target,
    save_calibration,
)
from langchain_stream.judge.evaluate import AlwaysMediumJudge
from langchain_stream.judge.heuristic import KeywordJudge
from langchain_stream.judge.trained import TrainedJudge

CORPUS = Path(__file__).resolve().parents[3] / "data" / "complexity" / "corpus.jsonl"


def _dirichlet_scores(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.log(rng.dirichlet([0.6, 0.6, 0.6], size=n))


def test_parse_target_accepts_percent_and_fractions() -> None:
    assert parse_target("60,25,15") == pytest.approx((0.6, 0.25, 0.15))
    assert parse_target("0.5/0.3/0.2") == pytest.approx((0.5, 0.3, 0.2))
    assert parse_target([2, 1, 1]) == pytest.approx((0.5, 0.25, 0.25))


@pytest.mark.parametrize("bad", ["60,40", "60,40,0", "a,b,c", "60,-5,45", "", "1,2,3,4"])
def test_parse_target_rejects_bad_shares(bad: str) -> None:
    with pytest.raises(ValueError, match="--target"):
        parse_target(bad)


@pytest.mark.parametrize("target", [(0.6, 0.25, 0.15), (0.2, 0.3, 0.5), (1 / 3, 1 / 3, 1 / 3)])
def test_fit_offsets_reaches_the_target(target: tuple[float, float, float]) -> None:
    scores = _dirichlet_scores(3000)
    offsets = fit_offsets(scores, target)
    assert offsets[0] == 0.0  # LOW is the reference
    assert hard_shares(scores, offsets) == pytest.approx(target, abs=0.005)


def test_fit_offsets_on_a_judge_that_already_matches_changes_little() -> None:
    scores = _dirichlet_scores(3000, seed=1)
    shares = hard_shares(scores)
    offsets = fit_offsets(scores, shares)
    assert np.abs(offsets).max() < 0.1


def test_fit_offsets_with_ties_gets_as_close_as_it_can() -> None:
    # Two distinct score rows only: a share between 0, 1/2 and 1 is out of reach.
    scores = np.log(np.array([[0.5, 0.3, 0.2]] * 50 + [[0.2, 0.3, 0.5]] * 50))
    offsets = fit_offsets(scores, (0.5, 0.25, 0.25))
    shares = hard_shares(scores, offsets)
    assert np.abs(shares - (0.5, 0.25, 0.25)).sum() <= 0.5 + 1e-9
    assert np.isfinite(offsets).all()


def test_fit_offsets_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        fit_offsets(np.zeros((0, 3)), (0.6, 0.25, 0.15))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        fit_offsets(np.zeros((4, 2)), (0.6, 0.25, 0.15))


def test_log_scores_needs_scores_and_floors_zeros() -> None:
    with pytest.raises(ValueError, match="no scores"):
        log_scores(Judgment(complexity=Complexity.LOW, judge="x"))
    out = log_scores(AlwaysMediumJudge().judge("q"))
    assert np.isfinite(out).all() and int(np.argmax(out)) == 1


def test_calibrated_judge_shifts_the_class_and_renormalises() -> None:
    inner = TrainedJudge()
    query = "Explain the difference between TCP and UDP."
    raw = inner.judge(query)
    assert raw.complexity == Complexity.MEDIUM
    shifted = CalibratedJudge(inner, (0.0, -30.0, -30.0)).judge(query)
    assert shifted.complexity == Complexity.LOW
    assert shifted.judge == "trained"
    assert sum(shifted.scores.values()) == pytest.approx(1.0)
    neutral = CalibratedJudge(inner, (0.0, 0.0, 0.0)).judge(query)
    assert neutral.complexity == raw.complexity
    assert neutral.scores[Complexity.MEDIUM] == pytest.approx(raw.scores[Complexity.MEDIUM])


def test_calibrated_judge_passes_through_judgments_without_scores() -> None:
    class NoScores:
        name = "no-scores"

        def judge(self, query: str, context: tuple[str, ...] = ()) -> Judgment:
            return Judgment(complexity=Complexity.HIGH, judge=self.name)

    assert CalibratedJudge(NoScores(), (5.0, 0.0, 0.0)).judge("q").complexity == Complexity.HIGH


def test_offsets_from_mapping_validates() -> None:
    assert offsets_from_mapping({"medium": 0.5}) == (0.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="LOW/MEDIUM/HIGH"):
        offsets_from_mapping({"EXTREME": 1.0})
    with pytest.raises(ValueError, match="finite"):
        offsets_from_mapping({"HIGH": float("inf")})


def test_load_queries_reads_objects_and_strings_and_ignores_labels(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    lines = [
        {"text": "what is MPI?", "ground_truth": "LOW"},
        "just a string",
        {"text": "why?", "context": ["Is MPI dead?", "No."]},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert load_queries(path) == [
        ("what is MPI?", ()),
        ("just a string", ()),
        ("why?", ("Is MPI dead?", "No.")),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [("not json\n", "not valid JSON"), ('{"query": "x"}\n', "text"), ("\n\n", "no queries")],
)
def test_load_queries_names_the_bad_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        load_queries(path)


def test_calibrate_fits_the_trained_judge_on_real_queries() -> None:
    queries = load_queries(CORPUS)[:200]
    fitted = calibrate(TrainedJudge(), queries, (0.6, 0.25, 0.15))
    assert fitted.judge == "trained" and fitted.n == 200
    assert fitted.shares_after == pytest.approx((0.6, 0.25, 0.15), abs=0.02)
    assert sum(fitted.shares_before) == pytest.approx(1.0)
    # Applying the offsets gives the same shares judgment by judgment.
    calibrated = CalibratedJudge(TrainedJudge(), fitted.offsets)
    classes = [calibrated.judge(text, ctx).complexity for text, ctx in queries]
    shares = [classes.count(c) / len(classes) for c in Complexity]
    assert shares == pytest.approx(list(fitted.shares_after), abs=1e-9)


def test_calibrate_refuses_a_judge_without_scores() -> None:
    class NoScores:
        name = "no-scores"

        def judge(self, query: str, context: tuple[str, ...] = ()) -> Judgment:
            return Judgment(complexity=Complexity.HIGH, judge=self.name)

    with pytest.raises(ValueError, match="no scores"):
        calibrate(NoScores(), [("q", ())], (0.6, 0.25, 0.15))


def _calibration(judge: str = "trained") -> Calibration:
    return Calibration(
        judge=judge,
        n=10,
        target=(0.6, 0.25, 0.15),
        offsets=(0.0, -1.25, -2.5),
        shares_before=(0.3, 0.4, 0.3),
        shares_after=(0.6, 0.25, 0.15),
    )


def test_save_calibration_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "stream.toml"
    path.write_text(
        "# my settings\n"
        'judge = "trained"\n'
        "judge_offsets = { keyword = { LOW = 0.0, MEDIUM = 0.5, HIGH = 0.0 } }\n"
        "judge_target = { LOW = 0.1, MEDIUM = 0.1, HIGH = 0.8 }\n\n"
        "[cloud_prices.my-model]\n"
        "input_per_mtok = 1.0\n"
        "output_per_mtok = 2.0\n"
    )
    save_calibration(path, _calibration())
    text = path.read_text()
    data = tomllib.loads(text)
    assert "# my settings" in text
    assert data["judge"] == "trained"
    assert data["cloud_prices"] == {"my-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}
    assert data["judge_offsets"] == {
        "keyword": {"LOW": 0.0, "MEDIUM": 0.5, "HIGH": 0.0},
        "trained": {"LOW": 0.0, "MEDIUM": -1.25, "HIGH": -2.5},
    }
    assert data["judge_target"] == {"LOW": 0.6, "MEDIUM": 0.25, "HIGH": 0.15}
    # Saving again replaces rather than duplicates.
    save_calibration(path, _calibration())
    assert path.read_text() == text


def test_save_calibration_replaces_tables_and_quotes_odd_judge_names(tmp_path: Path) -> None:
    path = tmp_path / "stream.toml"
    path.write_text("max_tokens = 77\n\n[judge_offsets.trained]\nLOW = 0.0\nHIGH = 9.0\n")
    save_calibration(path, _calibration("my_pkg.judges:Mine"))
    data = tomllib.loads(path.read_text())
    assert data["max_tokens"] == 77
    assert data["judge_offsets"]["trained"] == {"LOW": 0.0, "HIGH": 9.0}
    assert data["judge_offsets"]["my_pkg.judges:Mine"]["HIGH"] == -2.5


def test_save_calibration_creates_the_file_and_refuses_broken_toml(tmp_path: Path) -> None:
    fresh = tmp_path / "sub" / "stream.toml"
    save_calibration(fresh, _calibration())
    assert tomllib.loads(fresh.read_text())["judge_target"]["LOW"] == 0.6
    broken = tmp_path / "broken.toml"
    broken.write_text("judge = [\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        save_calibration(broken, _calibration())
    assert broken.read_text() == "judge = [\n"


def test_saved_offsets_are_read_by_the_settings(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "stream.toml"
    save_calibration(path, _calibration())
    monkeypatch.setenv("STREAM_CONFIG", str(path))
    settings = Settings()
    assert settings.judge_offsets == {"trained": {"LOW": 0.0, "MEDIUM": -1.25, "HIGH": -2.5}}
    assert settings.judge_target == {"LOW": 0.6, "MEDIUM": 0.25, "HIGH": 0.15}


def test_calibrate_file_saves_and_resolve_judge_applies_the_offsets(
    tmp_path: Path, monkeypatch
) -> None:
    config = tmp_path / "stream.toml"
    config.write_text("max_tokens = 64\n")
    monkeypatch.setenv("STREAM_CONFIG", str(config))  # written, then read back
    get_settings.cache_clear()
    queries = tmp_path / "traffic.jsonl"
    rows = CORPUS.read_text().splitlines()[:120]
    queries.write_text("\n".join(rows) + "\n")

    assert isinstance(resolve_judge("trained"), TrainedJudge)  # nothing configured yet
    fitted = calibrate_file(queries, judge="trained", target="70,20,10")
    assert fitted.saved_to == str(config)
    assert fitted.shares_after == pytest.approx((0.7, 0.2, 0.1), abs=0.03)
    judge = resolve_judge("trained")
    assert isinstance(judge, CalibratedJudge)
    assert judge.offsets.tolist() == pytest.approx(list(fitted.offsets), abs=1e-6)
    assert isinstance(resolve_judge("trained", calibrated=False), TrainedJudge)
    assert isinstance(resolve_judge("keyword"), KeywordJudge)  # offsets are per judge
    assert get_settings().judge_target == {"LOW": 0.7, "MEDIUM": 0.2, "HIGH": 0.1}


def test_resolve_judge_rejects_invalid_offsets(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "stream.toml"
    config.write_text("judge_offsets = { trained = { HUGE = 1.0 } }\n")
    monkeypatch.setenv("STREAM_CONFIG", str(config))
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="judge_offsets"):
        resolve_judge("trained")


def test_calibrate_file_without_saving_leaves_no_file(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "none.toml"
    monkeypatch.setenv("STREAM_CONFIG", str(config))
    queries = tmp_path / "traffic.jsonl"
    queries.write_text('"hello"\n"Prove that there are infinitely many primes."\n')
    fitted = calibrate_file(queries, judge="keyword", target="50,25,25", save=False)
    assert fitted.saved_to is None and fitted.n == 2
    assert not config.exists()


def _traffic(tmp_path: Path) -> Path:
    queries = tmp_path / "traffic.jsonl"
    queries.write_text('"hello"\n"Prove that there are infinitely many primes."\n"Explain TCP."\n')
    return queries


def test_calibrate_file_warns_when_the_environment_overrides_the_saved_offsets(
    tmp_path: Path, monkeypatch
) -> None:
    config = tmp_path / "stream.toml"
    monkeypatch.setenv("STREAM_CONFIG", str(config))
    monkeypatch.setenv("STREAM_JUDGE_OFFSETS", '{"keyword": {"MEDIUM": -0.4}}')
    with pytest.warns(EnvironmentOverrideWarning, match="STREAM_JUDGE_OFFSETS") as caught:
        fitted = calibrate_file(_traffic(tmp_path), judge="keyword", target="50,25,25")
    assert str(config) in str(caught[0].message)
    assert fitted.env_overrides == {"STREAM_JUDGE_OFFSETS": {"MEDIUM": -0.4}}
    assert fitted.to_dict()["env_overrides"] == fitted.env_overrides
    assert "keyword" in tomllib.loads(config.read_text())["judge_offsets"]  # still saved
    # What the warning is about: the settings take the environment's value over the file's.
    assert get_settings().judge_offsets["keyword"]["MEDIUM"] == -0.4


def test_calibrate_file_warns_about_a_target_from_the_environment(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("STREAM_CONFIG", str(tmp_path / "stream.toml"))
    monkeypatch.setenv("STREAM_JUDGE_TARGET", '{"LOW": 0.9, "MEDIUM": 0.05, "HIGH": 0.05}')
    with pytest.warns(EnvironmentOverrideWarning, match="STREAM_JUDGE_TARGET"):
        fitted = calibrate_file(_traffic(tmp_path), judge="keyword", target="50,25,25")
    assert list(fitted.env_overrides) == ["STREAM_JUDGE_TARGET"]


@pytest.mark.parametrize("environment", [None, '{"trained": {"MEDIUM": -0.4}}'])
def test_calibrate_file_is_quiet_when_nothing_overrides_the_judge(
    tmp_path: Path, monkeypatch, environment: str | None
) -> None:
    monkeypatch.setenv("STREAM_CONFIG", str(tmp_path / "stream.toml"))
    if environment is not None:  # another judge's offsets leave this judge's alone
        monkeypatch.setenv("STREAM_JUDGE_OFFSETS", environment)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnvironmentOverrideWarning)
        fitted = calibrate_file(_traffic(tmp_path), judge="keyword", target="50,25,25")
    assert fitted.env_overrides == {} and fitted.override_warning is None


def test_calibrate_file_without_saving_does_not_warn(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STREAM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("STREAM_JUDGE_OFFSETS", '{"keyword": {"MEDIUM": -0.4}}')
    with warnings.catch_warnings():
        warnings.simplefilter("error", EnvironmentOverrideWarning)
        fitted = calibrate_file(_traffic(tmp_path), judge="keyword", save=False)
    assert fitted.env_overrides == {}


def test_calibrate_file_refuses_invalid_offsets_in_the_environment_before_writing(
    tmp_path: Path, monkeypatch
) -> None:
    config = tmp_path / "stream.toml"
    monkeypatch.setenv("STREAM_CONFIG", str(config))
    monkeypatch.setenv("STREAM_JUDGE_OFFSETS", "{not json")
    with pytest.raises(ConfigurationError, match="judge_offsets"):
        calibrate_file(_traffic(tmp_path), judge="keyword")
    assert not config.exists()
