//! Colour: on for a terminal, off for pipes and files, off when `NO_COLOR` is set.

use std::io::IsTerminal;

/// When to colour terminal output (`--color`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// Colour when the stream is a terminal, `NO_COLOR` is unset or empty and `TERM` is not
    /// `dumb`.
    #[default]
    Auto,
    /// Always colour (for `less -R`).
    Always,
    /// Never colour.
    Never,
}

/// What a cell or line means, which decides its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    /// No colour.
    #[default]
    Plain,
    /// A good outcome: a claim that holds, a saving, a pass.
    Good,
    /// A bad outcome: a claim refuted, a failure, an SLA miss.
    Bad,
    /// Worth a look: partial agreement, a warning, a high risk.
    Warn,
    /// Secondary: simulated values, skipped rows, units.
    Dim,
    /// Emphasis: headers and titles.
    Bold,
}

/// How terminal text is styled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    color: bool,
}

impl Style {
    /// No colour: for files, pipes, Markdown and tests.
    pub const fn plain() -> Style {
        Style { color: false }
    }

    /// Colour on.
    pub const fn colored() -> Style {
        Style { color: true }
    }

    /// The style for stdout under `choice`.
    pub fn for_stdout(choice: ColorChoice) -> Style {
        Style::decide(choice, std::io::stdout().is_terminal())
    }

    /// The style for stderr under `choice`.
    pub fn for_stderr(choice: ColorChoice) -> Style {
        Style::decide(choice, std::io::stderr().is_terminal())
    }

    fn decide(choice: ColorChoice, terminal: bool) -> Style {
        let env_allows = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        Style {
            color: match choice {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => terminal && env_allows,
            },
        }
    }

    /// Whether colour is on.
    pub const fn is_colored(&self) -> bool {
        self.color
    }

    /// `text` in `tone`'s colour (unchanged without colour or for [`Tone::Plain`]).
    pub fn paint(&self, text: &str, tone: Tone) -> String {
        use anstyle::{AnsiColor, Effects};
        if !self.color || tone == Tone::Plain || text.is_empty() {
            return text.to_owned();
        }
        let style = match tone {
            Tone::Plain => anstyle::Style::new(),
            Tone::Good => AnsiColor::Green.on_default(),
            Tone::Bad => AnsiColor::Red.on_default().effects(Effects::BOLD),
            Tone::Warn => AnsiColor::Yellow.on_default(),
            Tone::Dim => anstyle::Style::new().effects(Effects::DIMMED),
            Tone::Bold => anstyle::Style::new().effects(Effects::BOLD),
        };
        format!("{style}{text}{style:#}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_never_adds_escapes() {
        assert_eq!(Style::plain().paint("x", Tone::Bad), "x");
        let red = Style::colored().paint("x", Tone::Bad);
        assert!(red.starts_with('\x1b') && red.ends_with('m') && red.contains('x'));
        assert_eq!(Style::colored().paint("x", Tone::Plain), "x");
    }

    #[test]
    fn explicit_choices_ignore_the_terminal() {
        assert!(Style::decide(ColorChoice::Always, false).is_colored());
        assert!(!Style::decide(ColorChoice::Never, true).is_colored());
        assert!(!Style::decide(ColorChoice::Auto, false).is_colored());
    }
}
