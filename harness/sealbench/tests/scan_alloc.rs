//! The relay that reads allocates nothing per message: a keyword scan of a message's text
//! (the relay's hot path with `--scan`) and the writing of that text into a message (the
//! driver's, with `traffic.content = "text"`). Counted with `dhat`'s testing mode, the
//! only test in this binary (the count is the process's).

use sealbench::driver::content::Corpus;
use sealbench::relay::scan::{ScanAction, Scanner, WordList, readable};
use sealcore::payload::{E2E_HEADER_LEN, E2eKind, PLAINTEXT_HEADER_LEN};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations made so far (blocks, ever).
fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

#[test]
fn writing_and_scanning_message_text_allocate_nothing_per_message() -> TestResult {
    let _profiler = dhat::Profiler::builder().testing().build();
    let corpus = Corpus::new(3, 4096, 0.5, 1_000);
    let mut found = 0;
    for words in [1_000, 100_000] {
        let scanner = Scanner::new(&WordList::generated(words, "test")?, ScanAction::Block)?;
        let mut body = vec![0u8; E2E_HEADER_LEN + PLAINTEXT_HEADER_LEN + 4096];
        body[0] = E2eKind::Plain as u8;
        scanner.count(b"a first search, before counting");
        // The count is the process's: the test harness's own thread may allocate a few
        // blocks at any time. An allocation per message would show in every window (2,000
        // of them); the harness's never in all three.
        let mut fewest = u64::MAX;
        for window in 0..3u32 {
            let before = allocations();
            for msg in window * 2_000..(window + 1) * 2_000 {
                let n = 24 + (msg as usize * 37) % 4000;
                let text = corpus.text(msg % 7, 1, msg);
                text.write(&mut body[E2E_HEADER_LEN + PLAINTEXT_HEADER_LEN..][..n]);
                let seen =
                    readable(&body[..E2E_HEADER_LEN + PLAINTEXT_HEADER_LEN + n]).ok_or("a PLAIN body is read")?;
                found += u64::from(scanner.count(seen) > 0);
            }
            fewest = fewest.min(allocations() - before);
        }
        assert_eq!(fewest, 0, "{words} words: no allocation per message");
    }
    assert!(found > 4_000, "about half of 12,000 messages carry a keyword: {found}");
    Ok(())
}
