-- error: SQL error at line 3, column 22: Required keyword: 'this' missing for <class 'sqlglot.expressions.core.Paren'> near '('
SELECT auction FROM bid
WHERE price > 10 AND (;
