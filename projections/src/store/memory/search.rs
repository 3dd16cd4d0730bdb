//! An embedded full-text index over officer names: each lowercase name word points at the
//! badges whose names contain it, and a query word matches every indexed word it begins.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use contracts::officer::search_terms;

/// Name words to badges.
#[derive(Default)]
pub(super) struct WordIndex {
    words: BTreeMap<String, BTreeSet<String>>,
}

impl WordIndex {
    /// Indexes `badge` under every word of `names`.
    pub(super) fn insert(&mut self, badge: &str, names: &[&str]) {
        for word in names.iter().flat_map(|n| search_terms(n)) {
            self.words.entry(word).or_default().insert(badge.to_owned());
        }
    }

    /// Badges whose names have a word starting with each of `terms`, best first: more
    /// exact word matches rank higher, then badge order.
    pub(super) fn search(&self, terms: &[String], limit: usize) -> Vec<String> {
        let mut scores: Option<HashMap<String, usize>> = None;
        for term in terms {
            let matches = self.matches(term);
            scores = Some(match scores {
                None => matches,
                Some(previous) => previous
                    .into_iter()
                    .filter_map(|(badge, score)| matches.get(&badge).map(|s| (badge, score + s)))
                    .collect(),
            });
        }
        let mut ranked: Vec<(String, usize)> = scores.unwrap_or_default().into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked
            .into_iter()
            .take(limit)
            .map(|(badge, _)| badge)
            .collect()
    }

    /// Badges with a word starting with `term`, scored 1 for a prefix and 2 for the whole word.
    fn matches(&self, term: &str) -> HashMap<String, usize> {
        let mut found = HashMap::new();
        let prefixed = self
            .words
            .range(term.to_owned()..)
            .take_while(|(word, _)| word.starts_with(term));
        for (word, badges) in prefixed {
            let score = if word == term { 2 } else { 1 };
            for badge in badges {
                let best = found.entry(badge.clone()).or_insert(0);
                *best = (*best).max(score);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_term_must_prefix_a_name_word_and_exact_words_rank_first() {
        let mut index = WordIndex::default();
        index.insert("B-1", &["Ana", "Reyes"]);
        index.insert("B-2", &["Anabel", "Reyes-Smith"]);
        index.insert("B-3", &["Bo", "Smith"]);
        let terms = |q: &str| search_terms(q);
        assert_eq!(index.search(&terms("ana"), 10), ["B-1", "B-2"]);
        assert_eq!(index.search(&terms("smith"), 10), ["B-2", "B-3"]);
        assert_eq!(index.search(&terms("ana smi"), 10), ["B-2"]);
        assert_eq!(index.search(&terms("REY"), 1), ["B-1"]);
        assert!(index.search(&terms("zed"), 10).is_empty());
    }
}
