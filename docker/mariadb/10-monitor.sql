-- Run by the mariadb image's entrypoint at initialisation (binlog off), on the primary and the
-- replica alike: postsvcd and writebackd read replica lag (SHOW SLAVE STATUS).
GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'zkpost'@'%';
