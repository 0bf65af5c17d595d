-- Facts of the routing decision shown to operators: repeat link, group petition, accused units.
ALTER TABLE petition ADD COLUMN repeat_of text;
ALTER TABLE petition ADD COLUMN group_petition boolean NOT NULL DEFAULT false;
ALTER TABLE petition ADD COLUMN accused_departments text[] NOT NULL DEFAULT '{}';
