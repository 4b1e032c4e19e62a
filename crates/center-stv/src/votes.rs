//! [`Votes`]: a number of votes in integer fixed point with five decimal
//! places, the precision rule 48(3) fixes for transfer values. It is the
//! only arithmetic of the count; there are no floats.
//!
//! A count never overflows it: ballot weights add up to at most `u64::MAX`
//! (the reader and [`Election::new`](crate::Election::new) check it), so
//! every figure is at most `u64::MAX × 10⁵ < 2⁸¹`, and the largest product
//! the counter forms (a surplus times a paper's value) is below `2⁹⁸`.

use std::fmt;

/// Units per vote: five decimal places.
pub const SCALE: u128 = 100_000;

/// A number of votes, in hundred-thousandths of a vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Votes(u128);

impl Votes {
    /// No votes.
    pub const ZERO: Votes = Votes(0);

    /// `units` hundred-thousandths of a vote.
    pub const fn from_units(units: u128) -> Votes {
        Votes(units)
    }

    /// `n` whole votes.
    pub const fn whole(n: u64) -> Votes {
        Votes(n as u128 * SCALE)
    }

    /// The value in hundred-thousandths of a vote.
    pub const fn units(self) -> u128 {
        self.0
    }

    /// `self − other`, or zero if `other` is larger.
    pub const fn saturating_sub(self, other: Votes) -> Votes {
        Votes(self.0.saturating_sub(other.0))
    }

    /// `papers` papers of `value` units each (a ballot line's weight times
    /// the value of its papers).
    pub(crate) const fn of_papers(papers: u64, value: u32) -> Votes {
        Votes(papers as u128 * value as u128)
    }
}

impl std::ops::Add for Votes {
    type Output = Votes;

    fn add(self, other: Votes) -> Votes {
        Votes(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Votes {
    fn add_assign(&mut self, other: Votes) {
        self.0 += other.0;
    }
}

impl std::iter::Sum for Votes {
    fn sum<I: Iterator<Item = Votes>>(iter: I) -> Votes {
        iter.fold(Votes::ZERO, |a, b| a + b)
    }
}

/// Always five decimals, as droop and the Scottish result sheets print
/// them: `1381.00000`.
impl fmt::Display for Votes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:05}", self.0 / SCALE, self.0 % SCALE)
    }
}

/// The value of a paper after a surplus transfer (rule 48(3)): the surplus
/// times the paper's value when received, divided by the transferring
/// candidate's total, truncated to five decimals ("any remainder being
/// ignored"). `value` is in units; the result is at most `value` because
/// `surplus < total`.
pub(crate) fn transfer_value(surplus: Votes, value: u32, total: Votes) -> u32 {
    // `total` is at least the quota, which is at least one vote.
    let units = surplus.0 * u128::from(value) / total.0.max(1);
    u32::try_from(units).unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_five_decimals() {
        assert_eq!(Votes::whole(1381).to_string(), "1381.00000");
        assert_eq!(Votes::from_units(7_320_404).to_string(), "73.20404");
        assert_eq!(Votes::from_units(5).to_string(), "0.00005");
        assert_eq!(Votes::ZERO.to_string(), "0.00000");
    }

    #[test]
    fn transfer_value_truncates() {
        // 251 over 1632, for a first-preference paper: 0.153799..., kept as 0.15379.
        let tv = transfer_value(Votes::whole(251), 100_000, Votes::whole(1632));
        assert_eq!(tv, 15_379);
        // A paper already worth 0.15379 passing on a surplus of 1/3 of its
        // holder's total: 0.051263..., kept as 0.05126.
        let tv = transfer_value(Votes::whole(1), tv, Votes::whole(3));
        assert_eq!(tv, 5_126);
    }

    #[test]
    fn largest_figures_do_not_overflow() {
        let most = Votes::whole(u64::MAX);
        let tv = transfer_value(most.saturating_sub(Votes::whole(1)), 100_000, most);
        assert_eq!(tv, 99_999);
        assert_eq!(Votes::of_papers(u64::MAX, 100_000), most);
    }
}
