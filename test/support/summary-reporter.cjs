// Ends a jest run with one plain line, `tests: N passed, N failed, N skipped`, which CI systems that do not know
// jest's own summary format can read. stderr, like jest's summary, so it comes after it.
class SummaryReporter {
  onRunComplete(_contexts, results) {
    const { numPassedTests: passed, numFailedTests: failed, numPendingTests: skipped, numTodoTests: todo } = results;
    process.stderr.write(`tests: ${passed} passed, ${failed} failed, ${skipped + todo} skipped\n`);
  }
}
module.exports = SummaryReporter;
