package queue

// CountAttached exposes countAttached to the external tests.
var CountAttached = countAttached
