"""One customer's heart: a smooth, believable heart-rate curve with rare abnormal episodes.

The reading is a slow `level` that follows the customer's activity (rest, exercise, sleep) plus
a small correlated `wander` (an Ornstein-Uhlenbeck process), so consecutive readings differ by a
beat or two, not by random jumps. Normal readings always stay within
[BRADYCARDIA_BELOW_BPM, TACHYCARDIA_ABOVE_BPM]; only abnormal episodes leave that band, so a
downstream alert fires for an injected episode and for nothing else. Episodes start and stop
abruptly, like paroxysmal tachycardia or an intermittent heart block, and last minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from random import Random

from heartbeat_contract import (
    BRADYCARDIA_BELOW_BPM,
    MAX_VALID_BPM,
    MIN_VALID_BPM,
    TACHYCARDIA_ABOVE_BPM,
)

REST, EXERCISE, SLEEP = "rest", "exercise", "sleep"
ACTIVITIES = (REST, EXERCISE, SLEEP)

# Simulated seconds each activity lasts, and what may follow it (with weights).
ACTIVITY_SECONDS = {REST: (180.0, 900.0), EXERCISE: (300.0, 1200.0), SLEEP: (900.0, 3600.0)}
_NEXT_ACTIVITY = {
    REST: ((EXERCISE, SLEEP, REST), (0.45, 0.25, 0.30)),
    EXERCISE: ((REST,), (1.0,)),
    SLEEP: ((REST,), (1.0,)),
}
_INITIAL_ACTIVITY = (ACTIVITIES, (0.60, 0.15, 0.25))

LEVEL_TAU_SECONDS = 45.0  # how fast the level follows a change of activity
WANDER_TAU_SECONDS = 8.0  # correlation time of the beat-to-beat wander

# Normal readings are clamped into this band; abnormal episodes live strictly outside it.
NORMAL_LOW_BPM = BRADYCARDIA_BELOW_BPM
NORMAL_HIGH_BPM = TACHYCARDIA_ABOVE_BPM
EPISODE_SECONDS = (120.0, 300.0)
MEAN_EPISODE_SECONDS = sum(EPISODE_SECONDS) / 2
TACHYCARDIA_BPM = (130.0, 170.0)  # episode level range
BRADYCARDIA_BPM = (41.0, 47.0)
EPISODE_WANDER_BPM = 2.5
TACHYCARDIA_SHARE = 0.6  # of episodes; the rest are bradycardia


@dataclass(frozen=True)
class Profile:
    """A customer's own physiology: resting rate, variability and how activity moves them."""

    baseline: float  # resting bpm
    variability: float  # standard deviation of the wander, bpm
    sleep_drop: float  # bpm below baseline while asleep
    exercise_rise: float  # bpm above baseline while exercising

    @classmethod
    def draw(cls, rng: Random) -> Profile:
        return cls(
            baseline=rng.uniform(56.0, 82.0),
            variability=rng.uniform(1.0, 3.0),
            sleep_drop=rng.uniform(7.0, 14.0),
            exercise_rise=rng.uniform(25.0, 45.0),
        )

    def target(self, activity: str) -> float:
        """The level this activity settles at, kept clear of the abnormal thresholds."""
        if activity == SLEEP:
            return max(self.baseline - self.sleep_drop, NORMAL_LOW_BPM + 3.0)
        if activity == EXERCISE:
            return min(self.baseline + self.exercise_rise, NORMAL_HIGH_BPM - 4.0)
        return self.baseline


def episode_hazard(abnormal_rate: float) -> float:
    """Episode starts per second outside an episode so that `abnormal_rate` of time is inside.

    A renewal process with mean gap 1/h and mean episode D spends D / (D + 1/h) in episodes.
    """
    if abnormal_rate <= 0.0:
        return 0.0
    return abnormal_rate / (MEAN_EPISODE_SECONDS * (1.0 - abnormal_rate))


class Heart:
    """The state of one customer's heart, advanced one reading at a time."""

    __slots__ = (
        "_decay_cache",
        "_hazard",
        "_rng",
        "activity",
        "activity_left",
        "episode_left",
        "episode_level",
        "level",
        "offset",
        "profile",
        "target",
        "wander",
    )

    def __init__(self, profile: Profile, rng: Random, abnormal_rate: float) -> None:
        self.profile = profile
        self._rng = rng
        self._hazard = episode_hazard(abnormal_rate)
        self._decay_cache: tuple[float, float, float, float] = (-1.0, 0.0, 0.0, 0.0)
        names, weights = _INITIAL_ACTIVITY
        self.activity = rng.choices(names, weights)[0]
        self.activity_left = rng.uniform(0.0, ACTIVITY_SECONDS[self.activity][1])  # mid-activity
        self.target = profile.target(self.activity)
        self.level = self.target
        self.wander = rng.gauss(0.0, profile.variability)
        self.episode_left = 0.0
        self.episode_level = 0.0
        self.offset = 0.0  # bpm added to every activity's level (scripted shifts, history loader)
        # Start in steady state: a share `abnormal_rate` of customers is mid-episode already.
        if abnormal_rate > 0.0 and rng.random() < abnormal_rate:
            self._start_episode()
            self.episode_left = rng.uniform(0.0, self.episode_left)

    @property
    def in_episode(self) -> bool:
        return self.episode_left > 0.0

    def _start_episode(self) -> None:
        rng = self._rng
        self.episode_left = rng.uniform(*EPISODE_SECONDS)
        band = TACHYCARDIA_BPM if rng.random() < TACHYCARDIA_SHARE else BRADYCARDIA_BPM
        self.episode_level = rng.uniform(*band)
        self.wander = rng.gauss(0.0, EPISODE_WANDER_BPM)

    def exercise(self, seconds: float) -> None:
        """Start exercising now, for `seconds` (a scripted workout), whatever the activity was."""
        self.activity = EXERCISE
        self.activity_left = seconds
        self.target = self.profile.target(EXERCISE)

    def _next_activity(self) -> None:
        names, weights = _NEXT_ACTIVITY[self.activity]
        self.activity = self._rng.choices(names, weights)[0]
        self.activity_left += self._rng.uniform(*ACTIVITY_SECONDS[self.activity])
        self.target = self.profile.target(self.activity)

    def _decay(self, dt: float) -> tuple[float, float, float]:
        """(level factor, wander factor, wander noise scale) for a step of dt seconds, cached."""
        cached = self._decay_cache
        if cached[0] != dt:
            wander = math.exp(-dt / WANDER_TAU_SECONDS)
            cached = (dt, math.exp(-dt / LEVEL_TAU_SECONDS), wander, math.sqrt(1 - wander * wander))
            self._decay_cache = cached
        return cached[1], cached[2], cached[3]

    def beat(self, dt: float) -> int:
        """Advance by dt simulated seconds and return the heart rate now, in whole bpm."""
        if dt > 0.0:
            self.activity_left -= dt
            while self.activity_left <= 0.0:
                self._next_activity()
            level_keep, wander_keep, wander_noise = self._decay(dt)
            rng = self._rng
            if self.episode_left > 0.0:
                self.episode_left -= dt
                if self.episode_left > 0.0:
                    self.wander = self.wander * wander_keep + (
                        EPISODE_WANDER_BPM * wander_noise * rng.gauss(0.0, 1.0)
                    )
                else:  # abrupt end: straight back to the activity's level
                    self.episode_left = 0.0
                    self.level = self.target + self.offset
                    self.wander = rng.gauss(0.0, self.profile.variability)
            elif self._hazard and rng.random() < -math.expm1(-self._hazard * dt):
                self._start_episode()
            if self.episode_left <= 0.0:
                target = self.target + self.offset
                self.level = target + (self.level - target) * level_keep
                self.wander = self.wander * wander_keep + (
                    self.profile.variability * wander_noise * rng.gauss(0.0, 1.0)
                )
        if self.episode_left > 0.0:
            bpm = round(self.episode_level + self.wander)
            if self.episode_level > NORMAL_HIGH_BPM:
                return NORMAL_HIGH_BPM + 1 if bpm <= NORMAL_HIGH_BPM else min(bpm, MAX_VALID_BPM)
            return NORMAL_LOW_BPM - 1 if bpm >= NORMAL_LOW_BPM else max(bpm, MIN_VALID_BPM)
        bpm = round(self.level + self.wander)
        if bpm < NORMAL_LOW_BPM:
            return NORMAL_LOW_BPM
        return NORMAL_HIGH_BPM if bpm > NORMAL_HIGH_BPM else bpm


# Rare, persistent critical episodes: a heart rate out of the valid range but physiologically
# possible (severe bradycardia or a tachyarrhythmia), held for tens of seconds, so that the
# job's critical rule (HEARTBEAT_CRITICAL_SUSTAIN_SECONDS) opens a real episode. Unlike sensor
# glitches they are persistent; unlike abnormal episodes they leave the valid range.
CRITICAL_LOW_BPM = (30, 38)
CRITICAL_HIGH_BPM = (185, 220)
CRITICAL_SECONDS = (20.0, 60.0)
CRITICAL_HIGH_SHARE = 0.5


@dataclass(frozen=True)
class CriticalEpisode:
    """One scripted critical episode of one customer: its kind's band and simulated times."""

    high: bool
    start_ms: int
    end_ms: int  # exclusive


class CriticalEpisodes:
    """One customer's critical episodes: starts form a Poisson process of `rate_per_hour`, each
    lasts CRITICAL_SECONDS at a level in its band, with a beat or two of wander. `bpm` says
    what the heart reads at a moment instead of its usual curve (None outside an episode), so
    the curve itself, and every other customer's, is the same with or without them."""

    __slots__ = ("_level", "_rate_per_ms", "_rng", "episodes", "next_start_ms")

    def __init__(self, rng: Random, rate_per_hour: float, start_ms: int) -> None:
        self._rng = rng
        self._rate_per_ms = rate_per_hour / 3_600_000.0
        self._level = 0
        self.episodes: list[CriticalEpisode] = []
        self.next_start_ms = self._after(start_ms)

    def _after(self, moment_ms: int) -> int:
        if self._rate_per_ms <= 0.0:
            return 2**62
        return moment_ms + int(self._rng.expovariate(self._rate_per_ms))

    def bpm(self, now_ms: int) -> int | None:
        """The critical reading at `now_ms` (non-decreasing calls), or None."""
        current = self.episodes[-1] if self.episodes else None
        if current is None or now_ms >= current.end_ms:
            if now_ms < self.next_start_ms:
                return None
            rng = self._rng
            high = rng.random() < CRITICAL_HIGH_SHARE
            start = self.next_start_ms
            current = CriticalEpisode(
                high, start, start + int(rng.uniform(*CRITICAL_SECONDS) * 1000)
            )
            self.episodes.append(current)
            self._level = rng.randint(*(CRITICAL_HIGH_BPM if high else CRITICAL_LOW_BPM))
            self.next_start_ms = self._after(current.end_ms)
            if now_ms >= current.end_ms:  # a reading gap longer than the episode: missed it
                return self.bpm(now_ms)
        low, high = CRITICAL_HIGH_BPM if current.high else CRITICAL_LOW_BPM
        return min(high, max(low, self._level + self._rng.randint(-2, 2)))


def sensor_glitch(rng: Random) -> int:
    """An out-of-range reading as a faulty sensor produces it: zero, far too low or too high."""
    pick = rng.random()
    if pick < 0.3:
        return 0
    if pick < 0.65:
        return rng.randint(1, MIN_VALID_BPM - 1)
    return rng.randint(MAX_VALID_BPM + 1, 255)
