-- Pre-aggregated projection: referrals per referring party (skeleton of the board figures).
CREATE TABLE referrals_by_party (
    party   text PRIMARY KEY,
    count   bigint NOT NULL
);
