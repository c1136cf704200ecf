package api

// DuplicateKey exports duplicateKey to the tests.
var DuplicateKey = duplicateKey
