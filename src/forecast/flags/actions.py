"""Suggested actions: each flag maps to a decision the brief names (docs/flags.md), in words a rep acts on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Action:
    """What to do about a flag, and the decision of the brief it comes from.

    Attributes:
        text: The suggested action.
        decision: The brief's decision it applies (docs/flags.md, quoted in English).
    """

    text: str
    decision: str


ACTIONS: dict[str, Action] = {
    "churn_risk": Action(
        "Review this one today: read the reasons, call the decision maker and agree a dated next step; "
        "if it cannot be saved, close it and free the time.",
        "which behaviours show a prospect is about to drop out -> act on them; "
        "many open opportunities -> capacity check and prioritisation",
    ),
    "going_cold": Action(
        "Re-contact now and book a dated next step; if the rep's open list is too long to keep this "
        "cadence, rebalance or prioritise it.",
        "prospect tracking: date of last contact, next action; "
        "many open opportunities -> capacity check and prioritisation",
    ),
    "dormant": Action(
        "Clean the list: close it as lost or disqualified, or move it to a nurture campaign; do not "
        "spend a rep's week on it unless it shows new interest.",
        "prospect tracking: date of last contact, next action; "
        "many open opportunities -> capacity check and prioritisation",
    ),
    "no_activity": Action(
        "Contact the prospect this week with a reason to talk (new information, a question, a meeting "
        "proposal) and book the next step.",
        "prospect tracking: date of last contact; much selling time but no results -> "
        "reallocate time to what works",
    ),
    "ghosted": Action(
        "Stop repeating the same message: change channel (call, meeting, another contact at the "
        "account) and rewrite the email with a concrete question.",
        "many emails but few replies -> rewrite the emails",
    ),
    "close_overdue": Action(
        "Confirm the timing with the buyer and update the expected close date; if no date can be "
        "agreed, requalify the deal.",
        "high value created but low win rate -> focus on the right deals and closing",
    ),
    "stalled_in_stage": Action(
        "Find what blocks this stage (decision maker, budget, paperwork) and agree the step that moves "
        "it forward.",
        "slow stages -> find the bottleneck; low win rate at a stage -> fix that stage",
    ),
    "close_date_pushed": Action(
        "Requalify: confirm budget, authority and timing, and remove the steps that keep delaying the close.",
        "long cycles -> remove steps; focus on the right deals and closing",
    ),
    "amount_decreased": Action(
        "Check for price pressure or a competitor before the next cut; compare with the loss reasons "
        "of similar deals.",
        "rising losses -> analyse loss reasons",
    ),
    "no_next_step": Action(
        "Book a next action with a date (call, meeting or task) before leaving the record.",
        "prospect tracking: next action or task",
    ),
}
"""The suggested action of each flag."""


def action_for(flag: str) -> Action:
    """The suggested action of ``flag``.

    Raises:
        KeyError: For an unknown flag.
    """
    return ACTIONS[flag]
