SELECT n.id FROM prices AS n LEFT JOIN prices VERSION AS OF 0 AS b ON n.id = b.id WHERE b.id IS NULL
