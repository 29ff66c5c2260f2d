//! The did-you-mean: which known name a mistyped one was meant to be.
//! The server answers it for a waiting client (PROTOCOL.md, `near`), so no
//! client fetches every unit to guess; `up` checks its scripts' headers
//! with it.

/// The candidate closest to `name` if it is close enough to be a typo of
/// it: at most two edits, and at most a third of the longer name. A `dyn`,
/// so that its callers share one copy (BENCHMARKS.md, "Footprint").
pub fn nearest<'a>(name: &str, candidates: &mut dyn Iterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    candidates
        // Two edits change the length by two at most: most names are
        // passed over without a distance to compute.
        .filter(|other| {
            other.len().abs_diff(name.len()) <= 8 && other.chars().count().abs_diff(len) <= 2
        })
        .map(|other| (edit_distance(name, other), other))
        .filter(|&(d, other)| d <= 2 && d * 3 <= name.chars().count().max(other.chars().count()))
        .min()
        .map(|(_, other)| other)
}

/// Optimal string alignment distance: edits, counting a swap of two
/// neighbouring characters as one (`gti` -> `git`).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("gti-clone", "git-clone"), 1);
        assert_eq!(edit_distance("git-clon", "git-clone"), 1);
        assert_eq!(edit_distance("apt", "pip"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }

    #[test]
    fn only_a_close_name_is_suggested() {
        let names = ["git-clone", "pip-install", "db"];
        assert_eq!(nearest("gti-clone", &mut names.into_iter()), Some("git-clone"));
        assert_eq!(nearest("dc", &mut names.into_iter()), None, "one edit of two letters");
        assert_eq!(nearest("web", &mut names.into_iter()), None);
    }
}
