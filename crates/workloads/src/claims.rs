//! The claims ledger: each numeric claim of the article beside what this machine measured,
//! with a verdict computed from the measurement.
//!
//! A leaf the experiments feed: this module defines a [`Claim`], its [`Verdict`], how a rule
//! is applied to a measured value (a claim drafted with its rule, then judged with plain
//! numbers), and the [`Ledger`] that lays claims out for people. The rules that read a report
//! live beside it: [`defer_bench::ledger`](crate::defer_bench::ledger) (chapters 1 and 2, from
//! a defer report and, if measured, a tasks report) and
//! [`locality::ledger`](crate::locality::ledger) (chapter 3).
//!
//! Verdicts are never hard-coded where a value was measured: each claim states its rule (the
//! `rule` field), and the verdict is that rule applied to the measured value. When the value
//! cannot be measured here (no PMU, no Go toolchain, a claim about compiler internals) the
//! verdict is [`Verdict::NotMeasurable`] and `why` says why.
//!
//! ```
//! use frugal_workloads::claims::{Claim, Ledger, Verdict};
//!
//! let claim = Claim {
//!     id: "2.1-zero-alloc-go".into(),
//!     section: "2.1".into(),
//!     claim: "Go defer records live in the stack frame".into(),
//!     article_value: "0 allocations".into(),
//!     subject: "go-defer".into(),
//!     measured: Some("allocs/op: 0".into()),
//!     measured_value: Some(0.0),
//!     rule: "holds if every go-defer row shows 0 allocs/op".into(),
//!     verdict: Verdict::Holds,
//!     why: String::new(),
//! };
//! let ledger = Ledger::new("claims ledger", std::slice::from_ref(&claim));
//! let text = frugal_output::Render::document(&ledger).to_text(&frugal_output::Style::plain());
//! assert!(text.contains("=> HOLDS"));
//! ```
//!
//! # JSON schema
//! A [`Claim`] serializes as
//! `{ "id": str, "section": str, "claim": str, "article_value": str, "subject": str,
//!    "measured": str|null, "measured_value": f64|null, "rule": str,
//!    "verdict": "holds"|"does-not-hold"|"not-measurable", "why": str }`.

use frugal_output::{Document, Render, Table, Tone};
use serde::{Deserialize, Serialize};

/// Whether a claim survived measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The measured value satisfies the claim's rule.
    Holds,
    /// The measured value contradicts it.
    DoesNotHold,
    /// Nothing here can measure it; `why` says why.
    NotMeasurable,
}

impl Verdict {
    /// Text for tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does not hold",
            Verdict::NotMeasurable => "not measurable here",
        }
    }

    /// Its colour on a terminal: good, bad, or dimmed when nothing could be measured.
    pub fn tone(self) -> Tone {
        match self {
            Verdict::Holds => Tone::Good,
            Verdict::DoesNotHold => Tone::Bad,
            Verdict::NotMeasurable => Tone::Dim,
        }
    }

    /// [`Verdict::Holds`] when the rule is satisfied, else [`Verdict::DoesNotHold`].
    pub(crate) fn of(ok: bool) -> Verdict {
        if ok {
            Verdict::Holds
        } else {
            Verdict::DoesNotHold
        }
    }
}

/// One claim of the article beside our measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Stable identifier, e.g. `2.3-pool-allocs`.
    pub id: String,
    /// Article section, e.g. `2.3`.
    pub section: String,
    /// The claim, in English.
    pub claim: String,
    /// The article's number.
    pub article_value: String,
    /// What we measured it on (e.g. `go-defer loop64`, `rust chain-overflow`).
    pub subject: String,
    /// Our measurement, in words and units.
    pub measured: Option<String>,
    /// The number the rule was applied to.
    pub measured_value: Option<f64>,
    /// How the verdict is decided.
    pub rule: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why (especially when not measurable), and context.
    pub why: String,
}

/// A claim as the article states it, with its rule, before it is judged.
pub(crate) struct Draft {
    /// [`Claim::id`].
    pub(crate) id: &'static str,
    /// [`Claim::section`].
    pub(crate) section: &'static str,
    /// [`Claim::claim`].
    pub(crate) claim: &'static str,
    /// [`Claim::article_value`].
    pub(crate) article_value: &'static str,
    /// [`Claim::rule`].
    pub(crate) rule: &'static str,
}

impl Draft {
    /// The claim judged: what it was measured on, the value in words and as the number the
    /// rule read, the verdict and why.
    pub(crate) fn done(
        self,
        subject: impl Into<String>,
        measured: Option<(String, f64)>,
        verdict: Verdict,
        why: impl Into<String>,
    ) -> Claim {
        let (measured, measured_value) = match measured {
            Some((text, value)) => (Some(text), Some(value)),
            None => (None, None),
        };
        Claim {
            id: self.id.to_owned(),
            section: self.section.to_owned(),
            claim: self.claim.to_owned(),
            article_value: self.article_value.to_owned(),
            subject: subject.into(),
            measured,
            measured_value,
            rule: self.rule.to_owned(),
            verdict,
            why: why.into(),
        }
    }

    /// The claim, not measurable here for the reason `why`.
    pub(crate) fn unmeasurable(self, subject: &str, why: impl Into<String>) -> Claim {
        self.done(subject, None, Verdict::NotMeasurable, why)
    }
}

/// Claims laid out for people, under a heading: `bench defer --claims`, `bench locality` and
/// the full report show it the same way.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ledger<'a> {
    /// The heading (`claims ledger (article vs this machine)`).
    #[serde(skip)]
    pub heading: &'a str,
    /// The claims, in order.
    pub claims: &'a [Claim],
}

impl<'a> Ledger<'a> {
    /// A ledger of `claims` under `heading`.
    pub fn new(heading: &'a str, claims: &'a [Claim]) -> Ledger<'a> {
        Ledger { heading, claims }
    }

    /// Appends the ledger to `doc`: an empty line, the heading, then per claim its id, section
    /// and text, the article's value beside ours with the verdict, the subject and the rule,
    /// and why.
    pub fn append_to(&self, doc: &mut Document) {
        doc.blank().heading(self.heading);
        for c in self.claims {
            doc.line(format!("- [{}] §{} {}", c.id, c.section, c.claim));
            doc.toned(
                format!(
                    "    article: {}   measured: {}   => {}",
                    c.article_value,
                    c.measured.as_deref().unwrap_or("-"),
                    c.verdict.label().to_uppercase()
                ),
                c.verdict.tone(),
            );
            doc.line(format!("    subject: {}; rule: {}", c.subject, c.rule));
            if !c.why.is_empty() {
                doc.line(format!("    why: {}", c.why));
            }
        }
    }

    /// One row per claim, raw: the measured number as the rule read it (empty: not measured).
    pub fn table(&self) -> Table {
        let mut t = Table::new(
            [
                "id",
                "section",
                "claim",
                "article_value",
                "subject",
                "measured",
                "measured_value",
                "rule",
                "verdict",
                "why",
            ]
            .map(|h| (h, frugal_output::Align::Left)),
        );
        for c in self.claims {
            t.row([
                c.id.clone(),
                c.section.clone(),
                c.claim.clone(),
                c.article_value.clone(),
                c.subject.clone(),
                c.measured.clone().unwrap_or_default(),
                c.measured_value.map_or(String::new(), |v| v.to_string()),
                c.rule.clone(),
                serde_json::to_value(c.verdict)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                c.why.clone(),
            ]);
        }
        t
    }
}

impl Render for Ledger<'_> {
    const SCHEMA: &'static str = "frugal-claims";
    const VERSION: u32 = 1;

    fn document(&self) -> Document {
        let mut doc = Document::new(self.heading);
        let mut inner = Document::new("");
        self.append_to(&mut inner);
        // The heading is the title here: skip the blank line and heading `append_to` starts with.
        doc.blocks.extend(inner.blocks.into_iter().skip(2));
        doc
    }

    fn csv_table(&self) -> Option<Table> {
        Some(self.table())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(verdict: Verdict, why: &str) -> Claim {
        Draft {
            id: "x-1",
            section: "2.3",
            claim: "a claim",
            article_value: "5",
            rule: "holds if 5",
        }
        .done("subject", Some(("five".to_owned(), 5.0)), verdict, why)
    }

    #[test]
    fn drafts_judge_with_the_measured_value() {
        let c = claim(Verdict::of(true), "");
        assert_eq!((c.verdict, c.measured_value), (Verdict::Holds, Some(5.0)));
        assert_eq!(Verdict::of(false), Verdict::DoesNotHold);
        let u = Draft {
            id: "x-2",
            section: "1",
            claim: "c",
            article_value: "v",
            rule: "r",
        }
        .unmeasurable("s", "no PMU");
        assert_eq!(
            (u.verdict, u.measured, u.why.as_str()),
            (Verdict::NotMeasurable, None, "no PMU")
        );
    }

    #[test]
    fn ledger_text_and_csv() {
        let claims = [
            claim(Verdict::Holds, "because"),
            claim(Verdict::DoesNotHold, ""),
        ];
        let mut doc = Document::new("t");
        Ledger::new("claims ledger", &claims).append_to(&mut doc);
        let text = doc.to_text(&frugal_output::Style::plain());
        assert_eq!(
            text,
            "t\n\nclaims ledger\n- [x-1] §2.3 a claim\n    article: 5   measured: five   => HOLDS\n    \
             subject: subject; rule: holds if 5\n    why: because\n- [x-1] §2.3 a claim\n    \
             article: 5   measured: five   => DOES NOT HOLD\n    subject: subject; rule: holds if 5\n"
        );
        let csv = Ledger::new("h", &claims).table().to_csv();
        assert!(csv.starts_with(
            "id,section,claim,article_value,subject,measured,measured_value,rule,verdict,why\n"
        ));
        assert!(csv.contains(",five,5,holds if 5,holds,because\n"), "{csv}");
        assert!(csv.contains(",does-not-hold,\n"), "{csv}");
    }
}
